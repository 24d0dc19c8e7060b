package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/input"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/review"
	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/webhooks"
)

// logCanary is planted in env values, annotations and userInfo.extra of the
// requests the in-process server gets; it must never reach its log.
const logCanary = "CANARY-SECRET-5678"

// Policies for the logging test: a denial, a warning, a mutation, a
// mutation whose edit fails with a text quoting an annotation, and a
// runaway loop, the last two triggered by annotations.
var logTestPolicies = map[string]string{
	// printer prints the whole object: at debug level its output is logged,
	// with the annotation's value redacted.
	"printer/p.rego": `# METADATA
# title: Printer
# custom:
#   kind: validating
package portcullis.printer

deny contains "never" if {
	print("object", input.request.object)
	false
}
`,
	"no_privileged/p.rego": `# METADATA
# title: No privileged
# custom:
#   kind: validating
package portcullis.no_privileged

deny contains {"msg": sprintf("container %q must not be privileged", [c.name])} if {
	some c in input.request.object.spec.containers
	c.securityContext.privileged == true
}
`,
	"latest_tag/p.rego": `# METADATA
# title: Latest tag
# custom:
#   kind: validating
#   enforcement: warn
package portcullis.latest_tag

deny contains {"msg": sprintf("container %q uses the latest tag", [c.name])} if {
	some c in input.request.object.spec.containers
	endswith(c.image, ":latest")
}
`,
	"managed/p.rego": `# METADATA
# title: Managed label
# custom:
#   kind: mutating
package portcullis.managed

mutate contains {"op": "default", "path": ["metadata", "labels", "portcullis.dev/managed"], "value": "true"}
`,
	"leaky/p.rego": `# METADATA
# title: Leaky edit
# custom:
#   kind: mutating
package portcullis.leaky

mutate contains {"op": "set", "path": ["spec", "containers", {"name": token}, "image"], "value": "x"} if {
	token := input.request.object.metadata.annotations["example.com/token"]
}
`,
	"loop/p.rego": `# METADATA
# title: Loop
# custom:
#   kind: validating
#   failure_mode: allow
package portcullis.loop

deny contains {"msg": "never"} if {
	input.request.object.metadata.annotations["portcullis.test/loop"] == "true"
	n := numbers.range(1, 3000)
	some a in n
	some b in n
	some c in n
	(a * b) * c < 0
}
`,
}

// The process's whole log, at every level, carries no canary from any
// request on any path (denial, warning, mutation, failing edit, policy
// timeout, bad request) nor from a reload that fails; the reload error
// names the file and line.
func TestServeLogsNoSecrets(t *testing.T) {
	canaries := []string{logCanary, base64.StdEncoding.EncodeToString([]byte(logCanary))}
	for _, level := range []string{"debug", "info", "warn", "error"} {
		t.Run(level, func(t *testing.T) {
			dir := writePolicies(t, logTestPolicies)
			o := NewServeOptions()
			o.LogLevel = level
			o.EvalTimeout = 300 * time.Millisecond
			o.ShutdownDelay = 0
			s := startServe(t, o, dir)

			ann := map[string]any{"example.com/token": logCanary}
			requests := []struct {
				name, path string
				obj        map[string]any
				status     int
				allowed    bool
			}{
				{"denial and warning", webhooks.PathValidate, testPod(ann, true), 200, false},
				{"warning", webhooks.PathValidate, testPod(ann, false), 200, true},
				{"mutation and a failing edit", webhooks.PathMutate, testPod(ann, false), 200, true},
				// loop admits by its failure mode, but no_privileged, evaluated
				// after it with the deadline passed, denies by its own.
				{"policy timeout", webhooks.PathValidate, testPod(map[string]any{"example.com/token": logCanary, "portcullis.test/loop": "true"}, false), 200, false},
			}
			for _, r := range requests {
				status, resp, err := s.review(r.path, "uid-"+r.name, r.obj)
				if err != nil || status != r.status || resp.Allowed != r.allowed {
					t.Errorf("%s: %d %+v %v", r.name, status, resp, err)
				}
			}
			bad := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"bad","object":[%q]}}`, logCanary)
			if status, _, _ := s.post(webhooks.PathValidate, []byte(bad)); status != http.StatusBadRequest {
				t.Errorf("bad request: %d", status)
			}

			// A reload that fails: the error names the file and line; the
			// last good set keeps serving.
			broken := "# METADATA\n# custom:\n#   kind: validating\npackage portcullis.broken\n\n# " + logCanary + "\ndeny contains {\"msg\": \"x\"} if {\n\tinput.x ==\n}\n"
			if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(s.log.String(), "policy reload failed") {
				if time.Now().After(deadline) {
					t.Fatalf("no reload error logged:\n%s", s.log)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if status, resp, err := s.review(webhooks.PathValidate, "after-reload", testPod(ann, true)); err != nil || status != 200 || resp.Allowed {
				t.Errorf("after a failed reload: %d %+v %v", status, resp, err)
			}
			log := s.log.String()
			// The Rego source is not a secret (OPA quotes the failing line);
			// the comment line is not quoted, and no request content is.
			if !strings.Contains(log, `broken.rego:9: rego_parse_error: unexpected } token`) {
				t.Errorf("reload error does not name the file and line:\n%s", log)
			}
			for _, c := range canaries {
				if strings.Contains(log, c) {
					t.Errorf("log at %s leaks %q:\n%s", level, c, log)
				}
			}
			if level == "debug" && !strings.Contains(log, `"msg":"policy print","policy":"printer"`) || level == "debug" && !strings.Contains(log, `{\"example.com/token\": \"[REDACTED]\"}`) {
				t.Errorf("log at debug lacks the printer's redacted output:\n%s", log)
			}
			if level == "debug" || level == "info" {
				for _, line := range []string{"admission decision", "rejected admission request"} {
					if !strings.Contains(log, line) {
						t.Errorf("log at %s lacks %q:\n%s", level, line, log)
					}
				}
			}
			if level != "error" && !strings.Contains(log, `"msg":"policy evaluation failed","uid":"uid-policy timeout","policy":"loop","code":"timeout","error":"the deadline passed during evaluation","location":"`+filepath.ToSlash(dir)+`/loop/p.rego:6","timedOut":true`) {
				t.Errorf("log at %s lacks the timed out policy:\n%s", level, log)
			}
		})
	}
}

// builtinCanaries are credential-shaped values the built-in policies see
// in env values, command lines, Secret and ConfigMap data, annotations
// (Vault and AppArmor ones included) and userInfo.extra.
var builtinCanaries = []string{
	"CANARY-ENV-5678",
	"ghp_CANARYCANARYCANARYCANARYCANARYCANARY",
	"AKIACANARYSECRET5678",
	"CANARY-ARG-5678",
	"CANARYKEYMATERIAL",
	"CANARY-SECRET-DATA",
	"CANARY-STRING-DATA",
	"CANARY-CM-5678",
	"CANARY-ANNOTATION",
	"CANARY-VAULT",
	"CANARY-EXTRA",
}

const builtinCanaryManifests = `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    example.com/token: CANARY-ANNOTATION
    vault.hashicorp.com/agent-inject: "true"
    vault.hashicorp.com/role: web
    vault.hashicorp.com/agent-inject-secret-db: kv/data/CANARY-VAULT
    vault.hashicorp.com/agent-inject-template-db: '{{ with secret "kv/data/CANARY-VAULT" }}{{ .Data.data.password }}{{ end }}'
spec:
  containers:
  - name: app
    image: nginx:latest
    command: ["/app", "--password=CANARY-ARG-5678", "--token", "ghp_CANARYCANARYCANARYCANARYCANARYCANARY"]
    args: ["AKIACANARYSECRET5678"]
    env:
    - name: DB_PASSWORD
      value: CANARY-ENV-5678
    - name: GITHUB_TOKEN
      value: ghp_CANARYCANARYCANARYCANARYCANARYCANARY
    - name: AWS_ACCESS_KEY_ID
      value: AKIACANARYSECRET5678
    - name: TLS_KEY
      value: "-----BEGIN RSA PRIVATE KEY-----\nCANARYKEYMATERIAL\n-----END RSA PRIVATE KEY-----"
    securityContext:
      privileged: true
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations:
        example.com/token: CANARY-ANNOTATION
    spec:
      containers:
      - name: api
        image: registry.example.com/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        env:
        - name: API_KEY
          value: CANARY-ENV-5678
        - name: SECRET_TOKEN
          value: AKIACANARYSECRET5678
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  annotations:
    example.com/token: CANARY-ANNOTATION
type: Opaque
data:
  password: Q0FOQVJZLVNFQ1JFVC1EQVRB
stringData:
  token: CANARY-STRING-DATA
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: conf
data:
  aws: AKIACANARYSECRET5678
  app.properties: "db.password=CANARY-CM-5678\ngithub=ghp_CANARYCANARYCANARYCANARYCANARYCANARY\n"
`

// The built-in policies, run as `portcullis validate` runs them (mutate,
// then validate the mutated object), never put a canary value in a
// violation message, its details or a warning, while they do deny these
// objects. Patches are not checked: the Vault injection legitimately
// carries the annotations' templates into the agent's configuration.
func TestBuiltinPoliciesNoSecretEcho(t *testing.T) {
	if got := base64.StdEncoding.EncodeToString([]byte("CANARY-SECRET-DATA")); got != "Q0FOQVJZLVNFQ1JFVC1EQVRB" {
		t.Fatalf("fixture base64 is %s", got)
	}
	manifests, problems := input.Parse("canary.yaml", []byte(builtinCanaryManifests))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var builder review.Builder
	var src PolicySourceOptions
	reg, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(reg, nil)
	var checks []string
	for _, c := range builtinCanaries {
		checks = append(checks, strings.ToLower(c), strings.ToLower(base64.StdEncoding.EncodeToString([]byte(c))))
	}
	denied := map[string]bool{}
	for _, m := range manifests {
		req, err := builder.Request(m)
		if err != nil {
			t.Fatal(err)
		}
		req.UserInfo.Extra = map[string]authnv1.ExtraValue{"example.com/session": {"CANARY-EXTRA"}}
		var texts []string
		for _, phase := range []engine.Phase{engine.Mutating, engine.Validating} {
			dec, err := eng.Evaluate(context.Background(), phase, req, engine.Options{})
			if err != nil {
				t.Fatalf("%s %s: %v", m.GVK.Kind, phase, err)
			}
			if len(dec.Errors) > 0 {
				t.Errorf("%s %s: policy errors %+v", m.GVK.Kind, phase, dec.Errors)
			}
			for _, v := range dec.Violations {
				texts = append(texts, v.Message, fmt.Sprint(v.Details))
				if v.Enforcement == engine.EnforceDeny {
					denied[m.GVK.Kind+"/"+v.Policy] = true
				}
			}
			texts = append(texts, dec.Warnings...)
			texts = append(texts, dec.Message())
			if dec.Object != nil {
				req.Object.Raw = dec.Object
			}
		}
		for _, text := range texts {
			for _, c := range checks {
				if strings.Contains(strings.ToLower(text), c) {
					t.Errorf("%s %s: message or warning echoes a secret: %s", m.GVK.Kind, m.Name, text)
				}
			}
		}
	}
	// The objects are refused, so the messages above were really built.
	for _, want := range []string{"Pod/secret_handling", "Pod/pod_security", "Deployment/secret_handling", "ConfigMap/secret_handling"} {
		if !denied[want] {
			t.Errorf("%s did not deny; denied: %v", want, denied)
		}
	}
}
