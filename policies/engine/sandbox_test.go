package engine

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Built-ins that reach outside the process are refused when the policies
// load, with file and line, unless the configuration allows them by name.
func TestSandboxRefusesOutsideAccess(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body, config string
		err          string // "" = loads
	}{
		"http.send posting the object": {
			body: "deny contains {\"msg\": \"x\"} if {\n\tresp := http.send({\"method\": \"POST\", \"url\": \"http://127.0.0.1:1\", \"body\": input.request.object})\n\tresp.status_code == 200\n}",
			err:  "p/p.rego:8: http.send is not allowed: policies get no network, environment or file access (an operator can allow it by name in the configuration's sandbox.allow_builtins)",
		},
		"net.lookup_ip_addr in a helper": {
			body: "addrs := net.lookup_ip_addr(\"example.com\")\n\ndeny contains {\"msg\": \"x\"} if count(addrs) > 0",
			err:  "p/p.rego:7: net.lookup_ip_addr is not allowed",
		},
		"opa.runtime reads the environment": {
			body: "deny contains {\"msg\": \"x\"} if opa.runtime().env.HOME",
			err:  "p/p.rego:7: opa.runtime is not allowed",
		},
		"json.match_schema may fetch remote schemas": {
			body: "deny contains {\"msg\": \"x\"} if {\n\t[ok, _] := json.match_schema(input.request.object, {})\n\tnot ok\n}",
			err:  "p/p.rego:8: json.match_schema is not allowed",
		},
		"a built-in as an operand": {
			body: "f := http.send if false\n\ndeny contains {\"msg\": \"x\"} if false",
			err:  "p/p.rego:7: http.send is not allowed",
		},
		"allowed by name in the configuration": {
			body:   "deny contains {\"msg\": \"x\"} if opa.runtime().env.HOME",
			config: "sandbox:\n  allow_builtins: [opa.runtime]\n",
		},
		"allowing one does not allow the others": {
			body:   "deny contains {\"msg\": \"x\"} if {\n\topa.runtime()\n\thttp.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1\"})\n}",
			config: "sandbox:\n  allow_builtins: [opa.runtime]\n",
			err:    "p/p.rego:9: http.send is not allowed",
		},
		"an unknown name in allow_builtins": {
			body:   "deny contains {\"msg\": \"x\"} if false",
			config: "sandbox:\n  allow_builtins: [http.sned]\n",
			err:    `config: sandbox.allow_builtins: "http.sned" is not an OPA built-in`,
		},
		"clock and randomness are allowed": {
			body: "deny contains {\"msg\": \"x\"} if {\n\ttime.now_ns() < 0\n\trand.intn(\"k\", 10) > 20\n\tuuid.rfc4122(\"k\") == \"\"\n}",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := Source{Policies: mapFS(map[string]string{"p/p.rego": validating("p", tc.body)})}
			if tc.config != "" {
				src.Configs = [][]byte{[]byte(tc.config)}
			}
			_, err := Load(context.Background(), src)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrLoad) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("load error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestSandboxDenied(t *testing.T) {
	t.Parallel()
	sb, err := NewSandbox(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http.send", "json.match_schema", "json.verify_schema", "net.lookup_ip_addr", "opa.runtime"}
	if got := sb.Denied(); !reflect.DeepEqual(got, want) {
		t.Errorf("denied = %q, want %q", got, want)
	}
	for _, b := range sb.Capabilities().Builtins {
		if b.Name == "http.send" {
			t.Error("capabilities still list http.send")
		}
	}
}

// Decisions of policies calling the clock or randomness are never served
// from the decision cache: every request is evaluated.
func TestNondeterministicPoliciesBypassTheCache(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"time.now_ns": `deny contains {"msg": sprintf("at %d", [time.now_ns()])}`,
		"rand.intn":   `deny contains {"msg": sprintf("drew %d", [rand.intn("k", 1000000000)])}`,
		"uuid":        `deny contains {"msg": uuid.rfc4122("k")}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := mustLoad(t, mapFS(map[string]string{"nd/nd.rego": validating("nd", body)}))
			obs := &ndRecorder{}
			eng := New(reg, obs, WithDecisionCache(100, 1<<20))
			req := podRequest(t, "default", pod(nil))
			var msgs []string
			for range 3 {
				dec, err := eng.Evaluate(context.Background(), Validating, req, Options{})
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, dec.Message())
				time.Sleep(time.Millisecond) // time.now_ns moves on
			}
			if obs.hits+obs.misses != 0 || obs.evaluations != 3 {
				t.Errorf("cache lookups %d hits %d misses, %d evaluations; want no lookups and 3 evaluations", obs.hits, obs.misses, obs.evaluations)
			}
			if msgs[0] == msgs[1] && msgs[1] == msgs[2] {
				t.Errorf("the same answer three times: %q", msgs)
			}
		})
	}
}

type ndRecorder struct{ hits, misses, evaluations int }

func (c *ndRecorder) ObservePolicy(string, Phase, string, time.Duration) { c.evaluations++ }
func (c *ndRecorder) ObserveCache(_ Phase, hit bool) {
	if hit {
		c.hits++
	} else {
		c.misses++
	}
}
