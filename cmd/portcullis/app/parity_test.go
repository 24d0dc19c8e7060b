package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/input"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/report"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/review"
	"github.com/portcullis/portcullis/policies/engine"
	"github.com/portcullis/portcullis/webhooks"
)

// TestParity sends every test manifest through the server's HTTP handlers,
// as the apiserver would (mutate, apply the patch, validate), and through
// `portcullis validate`, and requires identical decisions, messages,
// warnings and patches.
func TestParity(t *testing.T) {
	for _, policyDir := range []string{fixturePolicies, ""} {
		name := policyDir
		if name == "" {
			name = "builtin"
		}
		t.Run(name, func(t *testing.T) {
			src := PolicySourceOptions{}
			if policyDir != "" {
				src.PoliciesDirs, src.NoBuiltin = []string{policyDir}, true
			}
			reg, err := src.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			eng := engine.New(reg, nil)
			mux := http.NewServeMux()
			for path, phase := range map[string]engine.Phase{webhooks.PathValidate: engine.Validating, webhooks.PathMutate: engine.Mutating} {
				mux.Handle(path, &webhooks.Webhook{Handler: &webhooks.Handler{Engine: eng, Phase: phase}})
			}
			srv := httptest.NewServer(mux)
			defer srv.Close()

			files := []string{"testdata/manifests/mixed.yaml", "testdata/manifests/list.json", "testdata/manifests/dir", "testdata/manifests/json-stream.json", "testdata/manifests/repo", "testdata/manifests/statuses.yaml"}
			args := []string{"validate", "-o", "json", "--show-patch"}
			if policyDir != "" {
				args = append(args, "--builtin=false", "--policies", policyDir)
			}
			for _, f := range files {
				args = append(args, "-f", f)
			}
			_, out, errOut := run(t, "", args...)
			var rep report.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("decode CLI report: %v (stderr %s)", err, errOut)
			}
			var specs []input.Spec
			for _, f := range files {
				specs = append(specs, input.Spec{Path: f})
			}
			rd := &input.Reader{Recursive: true}
			in, err := rd.Read(context.Background(), specs)
			if err != nil {
				t.Fatal(err)
			}
			manifests := in.Objects
			if len(manifests) != len(rep.Results) {
				t.Fatalf("%d manifests, %d CLI results", len(manifests), len(rep.Results))
			}
			var builder review.Builder
			for i, m := range manifests {
				cli := rep.Results[i]
				req, err := builder.Request(m)
				if err != nil {
					t.Fatal(err)
				}
				mut := post(t, srv.URL+webhooks.PathMutate, req)
				obj := req.Object.Raw
				var patch []map[string]any
				if len(mut.Patch) > 0 {
					p, err := jsonpatchapply.DecodePatch(mut.Patch)
					if err != nil {
						t.Fatal(err)
					}
					if obj, err = p.Apply(obj); err != nil {
						t.Fatalf("apply server patch: %v", err)
					}
					if err := json.Unmarshal(mut.Patch, &patch); err != nil {
						t.Fatal(err)
					}
				}
				req.Object.Raw = obj
				val := post(t, srv.URL+webhooks.PathValidate, req)

				where := cli.Location()
				if got := mut.Allowed && val.Allowed; got != cli.Allowed {
					t.Errorf("%s: server allowed=%v, CLI allowed=%v", where, got, cli.Allowed)
				}
				var denied []string
				for _, v := range cli.Violations {
					if v.Enforcement == engine.EnforceDeny {
						denied = append(denied, "["+v.Policy+"] "+v.Message)
					}
				}
				var serverMsgs []string
				for _, r := range []*admissionv1.AdmissionResponse{mut, val} {
					if !r.Allowed && r.Result != nil {
						serverMsgs = append(serverMsgs, r.Result.Message)
					}
				}
				if got, want := strings.Join(serverMsgs, "; "), strings.Join(denied, "; "); got != want {
					t.Errorf("%s: server message %q, CLI %q", where, got, want)
				}
				warnings := append(append([]string{}, mut.Warnings...), val.Warnings...)
				if !reflect.DeepEqual(nonNil(warnings), nonNil(cli.Warnings)) {
					t.Errorf("%s: server warnings %q, CLI %q", where, warnings, cli.Warnings)
				}
				cliPatch, _ := json.Marshal(cli.Patch)
				var cliOps []map[string]any
				_ = json.Unmarshal(cliPatch, &cliOps)
				if !reflect.DeepEqual(nonNilOps(patch), nonNilOps(cliOps)) {
					t.Errorf("%s: server patch %s, CLI %s", where, mut.Patch, cliPatch)
				}
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilOps(s []map[string]any) []map[string]any {
	if s == nil {
		return []map[string]any{}
	}
	return s
}

func post(t *testing.T, url string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	t.Helper()
	review := admissionv1.AdmissionReview{Request: req}
	review.APIVersion, review.Kind = "admission.k8s.io/v1", "AdmissionReview"
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d", url, resp.StatusCode)
	}
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil || out.Response.UID != req.UID {
		t.Fatalf("%s: response UID mismatch", url)
	}
	return out.Response
}
