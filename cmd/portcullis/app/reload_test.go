package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/portcullis/portcullis/webhooks"
)

const noPrivileged = `# METADATA
# title: No privileged
# custom:
#   kind: validating
package portcullis.no_privileged

deny contains {"msg": sprintf("container %q must not be privileged", [c.name])} if {
	some c in input.request.object.spec.containers
	c.securityContext.privileged == true
}
`

// gauge reads one metric of the served registry ("" labels: the first).
func gauge(t *testing.T, o *ServeOptions, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := o.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

func (s *served) readyzVerbose(t *testing.T) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.srv.HealthAddr().String() + webhooks.PathReadyz + "?verbose")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz?verbose: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// A hot reload to an empty policy set (every .rego removed) is refused: the
// privileged pod stays denied, /readyz stays 200 and says the last reload
// failed, the metrics say so and name the serving set; fixing it recovers.
func TestServeRefusesReloadToNoPolicies(t *testing.T) {
	dir := writePolicies(t, map[string]string{"no_privileged/p.rego": noPrivileged})
	o := NewServeOptions()
	s := startServe(t, o, dir)
	hash0 := regexp.MustCompile(`policy set sha256:([0-9a-f]{64}): 1 policies, loaded \d+s ago\nlast reload: ok\n$`).FindStringSubmatch(s.readyzVerbose(t))
	if hash0 == nil {
		t.Fatalf("readyz?verbose: %q", s.readyzVerbose(t))
	}
	if v, ok := gauge(t, o, "portcullis_policy_set_info", map[string]string{"hash": hash0[1]}); !ok || v != 1 {
		t.Errorf("portcullis_policy_set_info{hash=%s} = %v (%v)", hash0[1], v, ok)
	}
	if v, _ := gauge(t, o, "portcullis_policy_set_loaded_timestamp_seconds", nil); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("loaded timestamp %v", v)
	}
	denied := func() bool {
		t.Helper()
		code, resp, err := s.review(webhooks.PathValidate, "uid-1", testPod(nil, true))
		if err != nil || code != 200 {
			t.Fatalf("review: %d %v", code, err)
		}
		return !resp.Allowed
	}
	if !denied() {
		t.Fatal("privileged pod admitted at start")
	}

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, s.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "no_privileged")); err != nil {
		t.Fatal(err)
	}
	waitFor("the refused reload", func() bool {
		v, _ := gauge(t, o, "portcullis_policy_reloads_total", map[string]string{"result": "refused"})
		return v >= 1
	})
	if v, _ := gauge(t, o, "portcullis_policy_last_reload_failed", nil); v != 1 {
		t.Errorf("portcullis_policy_last_reload_failed = %v, want 1", v)
	}
	if !denied() {
		t.Error("privileged pod admitted after the policies were removed")
	}
	if code, body := s.readyz(); code != 200 || body != "ok" {
		t.Errorf("readyz: %d %q", code, body)
	}
	if got := s.readyzVerbose(t); !regexp.MustCompile(`^ok\npolicy set sha256:` + hash0[1] + `: 1 policies, loaded \d+s ago\nlast reload: refused \d+s ago, the set above keeps serving \(see the log\)\n$`).MatchString(got) {
		t.Errorf("readyz?verbose after the refusal: %q", got)
	}
	if !strings.Contains(s.log.String(), `"msg":"policy reload refused; keeping the last good policy set","error":"reload refused: the new policy set has no policies (serving them would admit everything)"`) {
		t.Errorf("log lacks the refusal:\n%s", s.log)
	}

	writeFile := func(name, src string) {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(filepath.Join(dir, "np", "p.rego"), strings.Replace(noPrivileged, "must not", "may not", 1))
	waitFor("the good reload", func() bool {
		v, _ := gauge(t, o, "portcullis_policy_last_reload_failed", nil)
		return v == 0
	})
	if _, ok := gauge(t, o, "portcullis_policy_set_info", map[string]string{"hash": hash0[1]}); ok {
		t.Error("the old hash is still reported")
	}
	if got := s.readyzVerbose(t); !strings.HasSuffix(got, "last reload: ok\n") || strings.Contains(got, hash0[1]) {
		t.Errorf("readyz?verbose after the fix: %q", got)
	}
}

// serve refuses to start on an empty policy set unless told to.
func TestServeEmptyPoliciesAtStart(t *testing.T) {
	empty := t.TempDir()
	o := NewServeOptions()
	o.Source.PoliciesDirs, o.Source.NoBuiltin = []string{empty}, true
	o.Port, o.HealthBindAddress, o.MetricsBindAddress = 0, "", ""
	o.Registry = prometheus.NewRegistry()
	err := o.Run(context.Background(), IO{In: bytes.NewReader(nil), Out: io.Discard, Err: io.Discard})
	if !errors.Is(err, errNoPolicies) {
		t.Fatalf("Run = %v, want %v", err, errNoPolicies)
	}
	o = NewServeOptions()
	o.AllowEmptyPolicies = true
	s := startServe(t, o, empty)
	code, resp, err := s.review(webhooks.PathValidate, "uid-1", testPod(nil, true))
	if err != nil || code != 200 || !resp.Allowed {
		t.Errorf("with --allow-empty-policies: %d %+v %v", code, resp, err)
	}
}

// A policy set that does not load stops serve before it listens: never
// ready, never allow-all; the error names the file and line.
func TestServeRefusesBrokenPoliciesAtStart(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"syntax error":    {"no_privileged/p.rego": noPrivileged + "\ndeny contains {\n"},
		"sandbox refusal": {"no_privileged/p.rego": noPrivileged + "\ndeny contains {\"msg\": \"x\"} if http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1\"})\n"},
		"compile error":   {"no_privileged/p.rego": noPrivileged + "\ndeny contains {\"msg\": x}\n"},
	} {
		t.Run(name, func(t *testing.T) {
			o := NewServeOptions()
			o.Source.PoliciesDirs, o.Source.NoBuiltin = []string{writePolicies(t, files)}, true
			o.Port, o.HealthBindAddress, o.MetricsBindAddress = 0, "127.0.0.1:0", ""
			o.Registry = prometheus.NewRegistry()
			started := false
			o.Started = func(*webhooks.Server) { started = true }
			err := o.Run(context.Background(), IO{In: bytes.NewReader(nil), Out: io.Discard, Err: io.Discard})
			if err == nil || !regexp.MustCompile(`no_privileged/p\.rego:1[0-9]`).MatchString(err.Error()) {
				t.Fatalf("Run = %v, want a load error naming no_privileged/p.rego and its line", err)
			}
			if started {
				t.Error("the server started")
			}
		})
	}
}
