package policies_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/policies/engine"
)

// The oracle tests prove that the pod_security policy agrees with upstream
// Pod Security Admission: for every pod, at baseline and at restricted, our
// deny set names exactly the checks upstream's evaluator fails, each with
// upstream's message byte for byte.

// Namespaces the oracle config maps to each level (restricted is the default).
const (
	oracleBaselineNamespace   = "oracle-baseline"
	oracleRestrictedNamespace = "oracle-restricted"
)

var oracleLevels = []struct {
	level     api.Level
	namespace string
}{
	{api.LevelBaseline, oracleBaselineNamespace},
	{api.LevelRestricted, oracleRestrictedNamespace},
}

// psaOracle is upstream's evaluator, with every check wrapped so that the
// ID of each failing check is recorded next to its result. The wrapping
// leaves the registry's own logic (levels, versions, overrides, order)
// untouched.
type psaOracle struct {
	evaluator policy.Evaluator
	failed    map[string]string // check ID → "<reason> (<detail>)", for the current evaluation
}

func newPSAOracle(t *testing.T) *psaOracle {
	t.Helper()
	o := &psaOracle{}
	checks := policy.DefaultChecks()
	for i := range checks {
		id := string(checks[i].ID)
		for j := range checks[i].Versions {
			check := checks[i].Versions[j].CheckPod
			checks[i].Versions[j].CheckPod = func(meta *metav1.ObjectMeta, spec *corev1.PodSpec) policy.CheckResult {
				r := check(meta, spec)
				if !r.Allowed {
					agg := policy.AggregateCheckResults([]policy.CheckResult{r})
					o.failed[id] = agg.ForbiddenDetail()
				}
				return r
			}
		}
	}
	evaluator, err := policy.NewEvaluator(checks, nil)
	if err != nil {
		t.Fatalf("upstream evaluator: %v", err)
	}
	o.evaluator = evaluator
	return o
}

// evaluate returns upstream's failing checks (ID → message) at level, latest version.
func (o *psaOracle) evaluate(t *testing.T, level api.Level, pod *corev1.Pod) map[string]string {
	t.Helper()
	o.failed = map[string]string{}
	results := o.evaluator.EvaluatePod(api.LevelVersion{Level: level, Version: api.LatestVersion()}, &pod.ObjectMeta, &pod.Spec)
	agg := policy.AggregateCheckResults(results)
	if len(agg.ForbiddenReasons) != len(o.failed) || agg.Allowed != (len(o.failed) == 0) {
		t.Fatalf("oracle bookkeeping: %d forbidden reasons, %d recorded checks", len(agg.ForbiddenReasons), len(o.failed))
	}
	return o.failed
}

// oracleCase is one pod to compare, as the JSON document the policy sees.
type oracleCase struct {
	name string
	kind string         // "Pod" or a workload kind wrapping the pod as its template
	pod  map[string]any // {"metadata": ..., "spec": ...}
}

// comparer holds the two sides and counts disagreements.
type comparer struct {
	t      *testing.T
	oracle *psaOracle
	ours   *podSecurityPolicy
	// checkLevels is each upstream check's level, which our violations carry.
	checkLevels map[string]string
	// failures counts, per "level/check", the pods upstream failed it on.
	failures   map[string]int
	compared   int
	disagreed  int
	maxReports int
}

// oracleConfig maps the two oracle namespaces to their levels.
const oracleConfig = `
policies:
  pod_security:
    level: restricted
    namespace_levels:
      ` + oracleBaselineNamespace + `: baseline
      ` + oracleRestrictedNamespace + `: restricted
`

func newComparer(t *testing.T) *comparer {
	levels := map[string]string{}
	for _, c := range policy.DefaultChecks() {
		levels[string(c.ID)] = string(c.Level)
	}
	return &comparer{
		t:           t,
		oracle:      newPSAOracle(t),
		ours:        newPodSecurityPolicy(t, oracleConfig),
		checkLevels: levels,
		maxReports:  10,
	}
}

// compare evaluates c on both sides at both levels and reports any
// difference in the decision, the set of failing checks or their messages.
func (cmp *comparer) compare(c oracleCase) {
	t := cmp.t
	t.Helper()
	raw, err := json.Marshal(c.pod)
	if err != nil {
		t.Fatalf("%s: encode pod: %v", c.name, err)
	}
	var typed corev1.Pod
	if err := json.Unmarshal(raw, &typed); err != nil {
		t.Fatalf("%s: decode pod: %v\n%s", c.name, err, raw)
	}
	obj := c.pod
	if c.kind != "Pod" {
		obj = workloadKinds[c.kind].wrap(c.pod)
	}
	for _, l := range oracleLevels {
		want := cmp.oracle.evaluate(t, l.level, &typed)
		if cmp.failures == nil {
			cmp.failures = map[string]int{}
		}
		for id := range want {
			cmp.failures[string(l.level)+"/"+id]++
		}
		if len(want) == 0 {
			cmp.failures[string(l.level)+"/(allowed)"]++
		}
		d := cmp.ours.eval(t, admissionReview(c.kind, l.namespace, obj))
		got := map[string]string{}
		var problems []string
		for _, v := range d.Deny {
			got[v.Check] = v.Msg
			if v.Enforcement != engine.EnforceDeny || v.Level != cmp.checkLevels[v.Check] {
				problems = append(problems, fmt.Sprintf("%s: enforcement %q, level %q (upstream level %q)", v.Check, v.Enforcement, v.Level, cmp.checkLevels[v.Check]))
			}
		}
		if len(d.Warnings) > 0 {
			problems = append(problems, fmt.Sprintf("warnings %q", d.Warnings))
		}
		if d.Allowed != (len(want) == 0) {
			problems = append(problems, fmt.Sprintf("allowed=%v, upstream allowed=%v", d.Allowed, len(want) == 0))
		}
		cmp.compared++
		if len(problems) == 0 && maps.Equal(got, want) {
			continue
		}
		cmp.disagreed++
		if cmp.disagreed > cmp.maxReports {
			continue
		}
		t.Errorf("%s (%s) at %s: disagreement\npod: %s\nupstream failing checks: %s\nours:                    %s\nother problems: %v",
			c.name, c.kind, l.level, raw, formatChecks(want), formatChecks(got), problems)
	}
}

func (cmp *comparer) finish() {
	cmp.t.Helper()
	if cmp.disagreed > 0 {
		cmp.t.Errorf("%d disagreements in %d comparisons (first %d shown)", cmp.disagreed, cmp.compared, min(cmp.disagreed, cmp.maxReports))
	}
	cmp.t.Logf("%d comparisons, %d disagreements", cmp.compared, cmp.disagreed)
}

func formatChecks(m map[string]string) string {
	if len(m) == 0 {
		return "{} (allowed)"
	}
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "\n  %s: %s", id, m[id])
	}
	return b.String()
}

// psaModuleDir finds the pod-security-admission module in the module cache,
// whose test/testdata holds upstream's rendered fixture pods.
func psaModuleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/pod-security-admission").Output()
	if err != nil {
		t.Fatalf("locate k8s.io/pod-security-admission: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatal("locate k8s.io/pod-security-admission: module not downloaded")
	}
	return dir
}

// TestPodSecurityOracleFixtures compares the policy with upstream on
// upstream's own pass and fail fixture pods for the latest version (the
// golden files its TestFixtures keeps identical to its fixture generators),
// each at both levels, as the raw document and as the apiserver would
// default and re-encode it, as a Pod and as a Deployment template.
func TestPodSecurityOracleFixtures(t *testing.T) {
	const version = "v1.37"
	root := filepath.Join(psaModuleDir(t), "test", "testdata")
	cmp := newComparer(t)
	files := 0
	for _, l := range oracleLevels {
		for _, outcome := range []string{"pass", "fail"} {
			dir := filepath.Join(root, string(l.level), version, outcome)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatalf("read fixtures: %v", err)
			}
			for _, e := range entries {
				path := filepath.Join(dir, e.Name())
				src, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("read fixture: %v", err)
				}
				var doc map[string]any
				if err := yaml.Unmarshal(src, &doc); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				var typed corev1.Pod
				if err := yaml.Unmarshal(src, &typed); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				files++

				// The apiserver defaults a volume without a source to emptyDir
				// before admission; upstream's pass fixtures rely on it.
				for i := range typed.Spec.Volumes {
					if reflect.ValueOf(typed.Spec.Volumes[i].VolumeSource).IsZero() {
						typed.Spec.Volumes[i].EmptyDir = &corev1.EmptyDirVolumeSource{}
					}
				}

				// The fixtures mean what their directory says (guards the reading above).
				failing := cmp.oracle.evaluate(t, l.level, &typed)
				check := strings.TrimSuffix(e.Name(), ".yaml")
				check = strings.TrimRight(check, "0123456789")
				switch {
				case outcome == "pass" && len(failing) > 0:
					t.Fatalf("%s: upstream fails a pass fixture: %v", path, failing)
				case outcome == "fail" && len(failing) == 0:
					t.Fatalf("%s: upstream allows a fail fixture", path)
				case outcome == "fail" && l.level == api.LevelBaseline && !hasCheckFold(failing, check):
					// (At restricted, a baseline check's fixture may fail the
					// restricted check that overrides it instead.)
					t.Fatalf("%s: upstream does not fail %s: %v", path, check, failing)
				}

				reencoded := map[string]any{}
				raw, _ := json.Marshal(typed)
				_ = json.Unmarshal(raw, &reencoded)
				name := fmt.Sprintf("%s/%s/%s", l.level, outcome, e.Name())
				podOnly := map[string]any{"metadata": doc["metadata"], "spec": doc["spec"]}
				cmp.compare(oracleCase{name: name + " (raw)", kind: "Pod", pod: podOnly})
				cmp.compare(oracleCase{name: name + " (re-encoded)", kind: "Pod", pod: reencoded})
				cmp.compare(oracleCase{name: name + " (template)", kind: "Deployment", pod: podOnly})
			}
		}
	}
	if files < 100 {
		t.Fatalf("only %d fixture files found under %s", files, root)
	}
	t.Logf("%d upstream fixture files", files)
	cmp.finish()
}

func hasCheckFold(failing map[string]string, lower string) bool {
	for id := range failing {
		if strings.EqualFold(id, lower) {
			return true
		}
	}
	return false
}

// TestPodSecurityOracleGenerated compares the policy with upstream on pods
// from a seeded generator that mixes every field the checks read, with
// absent, null, empty, explicit-false and bad values, container settings
// overriding pod settings, and pods wrapped in every workload kind.
func TestPodSecurityOracleGenerated(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	cmp := newComparer(t)
	g := &podGenerator{r: rand.New(rand.NewPCG(20260521, 37))}
	kinds := slices.Sorted(maps.Keys(workloadKinds))
	for i := range n {
		kind := "Pod"
		if g.chance(0.2) {
			kind = kinds[g.r.IntN(len(kinds))]
		}
		cmp.compare(oracleCase{name: fmt.Sprintf("generated pod %d", i), kind: kind, pod: g.pod()})
	}
	cmp.finish()

	// The generator must exercise every check at its levels, failing and
	// passing, and produce allowed pods at both levels.
	least := n / 100
	for _, c := range policy.DefaultChecks() {
		levels := []api.Level{api.LevelBaseline, api.LevelRestricted}
		if c.Level == api.LevelRestricted {
			levels = levels[1:]
		}
		for _, level := range levels {
			key := string(level) + "/" + string(c.ID)
			overridden := level == api.LevelRestricted && slices.Contains([]string{"capabilities_baseline", "seccompProfile_baseline", "hostPathVolumes", "procMount"}, string(c.ID))
			if got := cmp.failures[key]; !overridden && (got < least || got > n-least) {
				t.Errorf("%s failed on %d of %d generated pods: the generator does not exercise it both ways", key, got, n)
			}
		}
	}
	for _, level := range []string{"baseline", "restricted"} {
		if got := cmp.failures[level+"/(allowed)"]; got < least {
			t.Errorf("only %d of %d generated pods allowed at %s", got, n, level)
		}
	}
	t.Logf("upstream failures per check: %v", cmp.failures)
}

// podGenerator builds pod documents (map trees, as JSON would decode) that
// exercise every field the Pod Security checks read.
type podGenerator struct {
	r *rand.Rand
	p float64 // probability that a field is (re)generated
}

func (g *podGenerator) chance(p float64) bool { return g.r.Float64() < p }

func (g *podGenerator) oneOf(values ...any) any { return values[g.r.IntN(len(values))] }

// maybe, with probability g.p, replaces m[k] by: nothing (deleted), null, or
// one of values (a func() any is called to build the value).
func (g *podGenerator) maybe(m map[string]any, k string, values ...any) {
	if !g.chance(g.p) {
		return
	}
	switch x := g.r.IntN(10); {
	case x < 3:
		delete(m, k)
	case x < 4:
		m[k] = nil
	default:
		v := g.oneOf(values...)
		if f, ok := v.(func() any); ok {
			v = f()
		}
		m[k] = v
	}
}

// obj returns m[k] as an object when it is one (so nested fields can be generated).
func obj(m map[string]any, k string) (map[string]any, bool) {
	o, ok := m[k].(map[string]any)
	return o, ok
}

func (g *podGenerator) list(min, max int, elem func() any) []any {
	out := []any{}
	for range min + g.r.IntN(max-min+1) {
		out = append(out, elem())
	}
	return out
}

var (
	genCapabilitiesAdd  = []any{"AUDIT_WRITE", "CHOWN", "KILL", "NET_BIND_SERVICE", "NET_BIND_SERVICE", "NET_RAW", "SYS_ADMIN", "net_raw", "ALL", "", nil}
	genCapabilitiesDrop = []any{"ALL", "ALL", "all", "NET_RAW", "CHOWN", "", nil}
	genSysctls          = []any{"kernel.shm_rmid_forced", "net.ipv4.tcp_syncookies", "net.ipv4.tcp_notsent_lowat", "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_rmem", "kernel.msgmax", "net.core.somaxconn", "vm.swappiness", ""}
	genVolumeSources    = []string{
		"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim", "projected", "secret",
		"hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd", "flexVolume",
		"cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
		"portworxVolume", "scaleIO", "storageos",
	}
	genHosts = []any{"", "", "10.0.0.1", "evil.example", "localhost"}
)

func (g *podGenerator) pod() map[string]any {
	// Half the pods start restricted-clean and get a few changes (so single
	// failures and passes are common); the others are built at random.
	clean := g.chance(0.5)
	g.p = 0.5
	if clean {
		g.p = 0.06
	}

	names := g.containerNames()
	spec := map[string]any{}
	next := 0
	for _, field := range []struct {
		name     string
		min, max int
	}{{"initContainers", 0, 2}, {"containers", 1, 3}, {"ephemeralContainers", 0, 2}} {
		n := field.min + g.r.IntN(field.max-field.min+1)
		list := []any{}
		for range n {
			list = append(list, g.container(names[next], clean))
			next++
		}
		if len(list) > 0 || g.chance(0.5) {
			spec[field.name] = list
		}
	}
	if clean {
		spec["securityContext"] = map[string]any{"runAsNonRoot": true, "seccompProfile": map[string]any{"type": "RuntimeDefault"}}
	}
	g.podSpecFields(spec)

	metadata := map[string]any{"name": "generated"}
	if g.chance(0.4) {
		annotations := map[string]any{"example.com/unrelated": "x"}
		for range 1 + g.r.IntN(3) {
			name := names[g.r.IntN(len(names))]
			key := g.oneOf(
				"container.apparmor.security.beta.kubernetes.io/"+name,
				"container.apparmor.security.beta.kubernetes.io/other",
				"seccomp.security.alpha.kubernetes.io/pod",
				"container.seccomp.security.alpha.kubernetes.io/"+name,
			).(string)
			annotations[key] = g.oneOf("runtime/default", "localhost/profile", "", "unconfined", "localhost", `we"ird`)
		}
		metadata["annotations"] = annotations
	}
	return map[string]any{"metadata": metadata, "spec": spec}
}

// containerNames returns 7 names, a few with characters that quoting must
// not escape differently from upstream, and sometimes a duplicate (invalid
// in a real pod, but upstream lists duplicates in some messages and not in
// others, and so must we).
func (g *podGenerator) containerNames() []string {
	names := []string{"app", "sidecar", "init", "debug", "c4", "c5", "c6"}
	if g.chance(0.1) {
		names[g.r.IntN(len(names))] = g.oneOf(`qu"ote`, "ünïcode", `back\slash`, "").(string)
	}
	if g.chance(0.1) {
		names[1] = names[0]
	}
	g.r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	return names
}

func (g *podGenerator) podSpecFields(spec map[string]any) {
	for _, f := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		g.maybe(spec, f, true, false)
	}
	g.maybe(spec, "hostUsers", true, false, false)
	g.maybe(spec, "os", func() any { return map[string]any{"name": g.oneOf("linux", "windows", "windows", "")} })
	g.maybe(spec, "securityContext", func() any { return map[string]any{} })
	if sc, ok := obj(spec, "securityContext"); ok {
		g.maybe(sc, "runAsNonRoot", true, false)
		g.maybe(sc, "runAsUser", 0, 1000)
		g.maybe(sc, "seccompProfile", g.profile("RuntimeDefault", "Localhost", "Unconfined", "", "runtime/default"))
		g.maybe(sc, "appArmorProfile", g.profile("RuntimeDefault", "Localhost", "Unconfined", "", "localhost/x"))
		g.maybe(sc, "seLinuxOptions", g.seLinuxOptions)
		g.maybe(sc, "windowsOptions", g.windowsOptions)
		g.maybe(sc, "sysctls", func() any {
			return g.list(0, 3, func() any { return map[string]any{"name": g.oneOf(genSysctls...), "value": "1"} })
		})
	}
	g.maybe(spec, "volumes", func() any { return g.list(0, 4, g.volume) })
}

func (g *podGenerator) container(name string, clean bool) any {
	c := map[string]any{"name": name, "image": "registry.example/app:1"}
	if clean {
		c["securityContext"] = map[string]any{"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}}}
	}
	g.maybe(c, "securityContext", func() any { return map[string]any{} })
	if sc, ok := obj(c, "securityContext"); ok {
		g.maybe(sc, "privileged", true, false)
		g.maybe(sc, "allowPrivilegeEscalation", true, false)
		g.maybe(sc, "capabilities", func() any {
			caps := map[string]any{}
			g.maybe(caps, "add", func() any { return g.list(0, 3, func() any { return g.oneOf(genCapabilitiesAdd...) }) })
			g.maybe(caps, "drop", func() any { return g.list(0, 2, func() any { return g.oneOf(genCapabilitiesDrop...) }) })
			return caps
		})
		if caps, ok := obj(sc, "capabilities"); ok && g.chance(g.p) {
			caps["add"] = []any{g.oneOf(genCapabilitiesAdd...)}
		}
		g.maybe(sc, "procMount", "Default", "Unmasked", "")
		g.maybe(sc, "runAsNonRoot", true, false)
		g.maybe(sc, "runAsUser", 0, 1000)
		g.maybe(sc, "seccompProfile", g.profile("RuntimeDefault", "Localhost", "Unconfined", ""))
		g.maybe(sc, "appArmorProfile", g.profile("RuntimeDefault", "Localhost", "Unconfined", ""))
		g.maybe(sc, "seLinuxOptions", g.seLinuxOptions)
		g.maybe(sc, "windowsOptions", g.windowsOptions)
	}
	g.maybe(c, "ports", func() any {
		return g.list(0, 2, func() any {
			p := map[string]any{"containerPort": 8080}
			p["hostPort"] = g.oneOf(0, 8080, 80, 9, 443, nil)
			return p
		})
	})
	for _, probe := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		g.maybe(c, probe, g.handler)
	}
	g.maybe(c, "lifecycle", func() any {
		l := map[string]any{}
		if g.chance(0.7) {
			l["postStart"] = g.handler()
		}
		if g.chance(0.7) {
			l["preStop"] = g.handler()
		}
		return l
	})
	return c
}

// handler is a probe or lifecycle handler with httpGet and/or tcpSocket.
func (g *podGenerator) handler() any {
	h := map[string]any{}
	for _, kind := range []string{"httpGet", "tcpSocket"} {
		if g.chance(0.6) {
			action := map[string]any{"port": 8080}
			if g.chance(0.7) {
				action["host"] = g.oneOf(genHosts...)
			}
			h[kind] = action
		}
	}
	return h
}

func (g *podGenerator) profile(types ...any) func() any {
	return func() any {
		p := map[string]any{}
		if g.chance(0.9) {
			p["type"] = g.oneOf(types...)
			if p["type"] == "Localhost" {
				p["localhostProfile"] = "profile.json"
			}
		}
		return p
	}
}

func (g *podGenerator) seLinuxOptions() any {
	o := map[string]any{}
	if g.chance(0.7) {
		o["type"] = g.oneOf("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t", "spc_t", "unconfined_t")
	}
	if g.chance(0.3) {
		o["user"] = g.oneOf("", "system_u")
	}
	if g.chance(0.3) {
		o["role"] = g.oneOf("", "system_r")
	}
	if g.chance(0.3) {
		o["level"] = "s0:c123,c456"
	}
	return o
}

func (g *podGenerator) windowsOptions() any {
	o := map[string]any{}
	if g.chance(0.8) {
		o["hostProcess"] = g.oneOf(true, false, nil)
	}
	return o
}

func (g *podGenerator) volume() any {
	v := map[string]any{"name": g.oneOf("data", "config", "host", "cache", "scratch")}
	for range g.r.IntN(3) { // 0, 1 or 2 sources (0 is "unknown" to upstream)
		source := genVolumeSources[g.r.IntN(len(genVolumeSources))]
		if g.chance(0.2) {
			source = "hostPath" // the one baseline forbids
		}
		if g.chance(0.1) {
			v[source] = nil
		} else {
			v[source] = map[string]any{}
		}
	}
	return v
}
