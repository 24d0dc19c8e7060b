package mutations_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/policies/engine"
)

// vaultK8sDir holds what HashiCorp's injector (vault-k8s, its own
// agent-inject/agent code with the injector's default flags) made of each
// pod of the annotation matrix: facts recorded once outside this repository
// (see its README.md), never vault-k8s code.
var vaultK8sDir = filepath.Join("..", "vault_agent", "testdata", "vault-k8s")

// vaultK8sCase is one recorded case.
type vaultK8sCase struct {
	Case             string         `json:"case"`
	Namespace        string         `json:"namespace"`
	Input            map[string]any `json:"input"`
	Output           map[string]any `json:"output"`
	Error            string         `json:"error"`
	VaultCACertBytes string         `json:"vaultCACertBytes"`
}

// vaultK8sConfig sets Portcullis's injector-wide settings to the flags the
// recording ran with (the injector's defaults, vault-address
// https://vault.vault.svc:8200), and switches security_context off: only
// the injection is compared.
const vaultK8sConfig = `policies:
  security_context:
    enabled: false
`

// deliberateDifferences lists the matrix cases whose result differs from
// vault-k8s's on purpose, beyond what normaliseVaultK8s removes, and why.
// A case listed here that reaches parity fails the test, so the list stays
// honest.
var deliberateDifferences = map[string]string{
	// vault-k8s refuses a pod without a service account token mount;
	// Portcullis gives the agents a projected token volume instead.
	"no-token-mount": "injected with a projected service account token volume where vault-k8s refuses the pod",
	// vault-k8s adds a second container named vault-agent, which the API
	// server rejects; Portcullis treats the pod as already injected.
	"existing-vault-agent-container": "a container already named vault-agent: not injected (vault-k8s makes a pod the API server rejects)",
	// Portcullis's own annotation (proposed upstream in
	// hashicorp/vault-k8s#659): vault-k8s ignores it.
	"native-sidecar-annotation": "agent-native-sidecar: the sidecar is a native sidecar init container; vault-k8s has no such mode",
	// GID 0 does not make a process root: runAsNonRoot stays true, so the
	// pod still passes restricted.
	"run-as-group-zero": "runAsNonRoot stays true with agent-run-as-group: 0 (vault-k8s sets false)",
	// vault-k8s only applies the annotation when it injects the init agent.
	"share-process-namespace-no-pre-populate": "agent-share-process-namespace applies without the init agent too (vault-k8s ignores it then)",
}

// normaliseVaultK8s removes from a pod the documented, intended differences
// between the two injectors, so that what remains must be equal:
//   - the agent containers' seccompProfile RuntimeDefault (Portcullis's
//     hardening: an injected pod passes the restricted Pod Security
//     Standard; vault-k8s sets no seccomp profile);
//   - an empty "lifecycle": {} (vault-k8s writes one on every sidecar) or
//     "resources": {} (vault-k8s re-serialises the pod's own init
//     containers with agent-init-first): absent and empty mean the same to
//     the API server;
//   - the AWS_* variables copied from the app containers for the aws auth
//     type are sorted by name (vault-k8s emits them in Go map order);
//   - VAULT_CONFIG is decoded from base64 JSON and compared as a structure,
//     its templates sorted by destination (vault-k8s orders them by Go map
//     iteration, which is random; Portcullis by secret name).
func normaliseVaultK8s(t *testing.T, pod map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	spec, _ := out["spec"].(map[string]any)
	for _, field := range []string{"initContainers", "containers"} {
		list, _ := spec[field].([]any)
		for _, item := range list {
			c := item.(map[string]any)
			if r, ok := c["resources"].(map[string]any); ok && len(r) == 0 {
				delete(c, "resources")
			}
			name, _ := c["name"].(string)
			if name != "vault-agent" && name != "vault-agent-init" {
				continue
			}
			if sc, ok := c["securityContext"].(map[string]any); ok {
				if reflect.DeepEqual(sc["seccompProfile"], map[string]any{"type": "RuntimeDefault"}) {
					delete(sc, "seccompProfile")
				}
			}
			if lc, ok := c["lifecycle"].(map[string]any); ok && len(lc) == 0 {
				delete(c, "lifecycle")
			}
			env, _ := c["env"].([]any)
			sortAWSEnv(env)
			for _, e := range env {
				ev := e.(map[string]any)
				if ev["name"] != "VAULT_CONFIG" {
					continue
				}
				decoded, err := base64.StdEncoding.DecodeString(ev["value"].(string))
				if err != nil {
					t.Fatalf("%s: VAULT_CONFIG is not base64: %v", name, err)
				}
				var cfg map[string]any
				if err := json.Unmarshal(decoded, &cfg); err != nil {
					t.Fatalf("%s: VAULT_CONFIG is not JSON: %v", name, err)
				}
				if tpls, ok := cfg["template"].([]any); ok {
					sort.Slice(tpls, func(i, j int) bool {
						return fmt.Sprint(tpls[i].(map[string]any)["destination"]) < fmt.Sprint(tpls[j].(map[string]any)["destination"])
					})
				}
				ev["value"] = cfg
			}
		}
	}
	return out
}

// TestVaultK8sParity runs Portcullis's injection on every pod of the
// recorded annotation matrix and compares the result with vault-k8s's,
// modulo normaliseVaultK8s: containers, env, volumes, mounts, annotations
// and the decoded agent configuration. A case vault-k8s refused must be
// refused.
func TestVaultK8sParity(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(vaultK8sDir, "*.json.golden"))
	if err != nil || len(files) < 40 {
		t.Fatalf("want at least 40 recorded vault-k8s cases, found %d (%v)", len(files), err)
	}
	eng := newEngine(t, []byte(vaultK8sConfig))
	full := newEngine(t)
	parity := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c vaultK8sCase
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		t.Run(c.Case, func(t *testing.T) {
			e := eng
			if c.VaultCACertBytes != "" {
				cfg, err := yaml.Marshal(map[string]any{"policies": map[string]any{"vault_agent": map[string]any{"ca_cert_bytes": c.VaultCACertBytes}}})
				if err != nil {
					t.Fatal(err)
				}
				e = newEngine(t, []byte(vaultK8sConfig), cfg)
			}
			in, err := json.Marshal(c.Input)
			if err != nil {
				t.Fatal(err)
			}
			dec, mutated := mutate(t, e, in, c.Namespace)
			why, deliberate := deliberateDifferences[c.Case]
			var diffs []string
			switch {
			case c.Error != "" && dec.Allowed:
				diffs = []string{fmt.Sprintf("vault-k8s refused the pod (%s), Portcullis admitted it", c.Error)}
			case c.Error != "":
				// Both refused.
			case !dec.Allowed:
				diffs = []string{fmt.Sprintf("Portcullis refused the pod: %+v", dec.Violations)}
			default:
				var got map[string]any
				if err := json.Unmarshal(mutated, &got); err != nil {
					t.Fatal(err)
				}
				diffs = jsonDiff("", normaliseVaultK8s(t, c.Output), normaliseVaultK8s(t, got))
			}
			checkFullMutation(t, full, c, in)
			switch {
			case len(diffs) == 0 && deliberate:
				t.Errorf("case reaches parity with vault-k8s: remove it from deliberateDifferences (%s)", why)
			case len(diffs) == 0:
				parity++
			case !deliberate:
				t.Errorf("differs from vault-k8s (want - / got +):\n  %s", strings.Join(diffs, "\n  "))
			}
		})
	}
	t.Logf("per-pod parity with vault-k8s: %d of %d cases (%d deliberate differences)", parity, len(files), len(deliberateDifferences))
}

// jsonDiff lists the paths where two decoded JSON values differ.
func jsonDiff(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		var names []string
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		var out []string
		for _, k := range names {
			out = append(out, jsonDiff(path+"."+k, w[k], g[k])...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			break
		}
		var out []string
		for i := range w {
			out = append(out, jsonDiff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	}
	if reflect.DeepEqual(want, got) {
		return nil
	}
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	return []string{fmt.Sprintf("%s: - %s\n    + %s", path, wj, gj)}
}

// sortAWSEnv sorts, in place, the run of AWS_* variables copied from the
// app containers (everything but AWS_REGION from auth-config-region, which
// comes last).
func sortAWSEnv(env []any) {
	name := func(i int) string { n, _ := env[i].(map[string]any)["name"].(string); return n }
	start := -1
	for i := range env {
		if strings.HasPrefix(name(i), "AWS_") {
			start = i
			break
		}
	}
	if start < 0 {
		return
	}
	end := start
	for end < len(env) && strings.HasPrefix(name(end), "AWS_") {
		end++
	}
	run := env[start:end]
	if n, _ := run[len(run)-1].(map[string]any)["name"].(string); n == "AWS_REGION" && len(run) > 1 {
		run = run[:len(run)-1]
	}
	sort.SliceStable(run, func(i, j int) bool {
		return run[i].(map[string]any)["name"].(string) < run[j].(map[string]any)["name"].(string)
	})
}

// notRestrictedVaultK8s lists the matrix cases whose annotations themselves
// take the agents out of Pod Security restricted.
var notRestrictedVaultK8s = map[string]bool{
	"run-as-root": true, // agent-run-as-user: 0
}

// checkFullMutation runs every mutating policy with the default
// configuration on the case's pod: the result must be stable (a second pass
// changes nothing) and pass restricted, so every annotation of the matrix is
// covered by the idempotence and restricted-clean checks too.
func checkFullMutation(t *testing.T, eng *engine.Engine, c vaultK8sCase, in []byte) {
	t.Helper()
	dec, mutated := mutate(t, eng, in, c.Namespace)
	if !dec.Allowed {
		return
	}
	dec2, again := mutate(t, eng, mutated, c.Namespace)
	if c.Case == "set-security-context-false" {
		// The agents arrive without a security context after
		// security_context ran; the API server's reinvocation (the
		// webhook's reinvocationPolicy: IfNeeded) lets security_context
		// default them on the second pass, and the third changes nothing.
		mutated = again
		dec2, _ = mutate(t, eng, mutated, c.Namespace)
	}
	if len(dec2.Patch) != 0 {
		t.Errorf("second pass is not empty: %+v", dec2.Patch)
	}
	if fails := restrictedFailures(t, decodePod(t, mutated)); len(fails) > 0 && !notRestrictedVaultK8s[c.Case] {
		t.Errorf("mutated pod fails Pod Security restricted:\n  %s", strings.Join(fails, "\n  "))
	}
}
