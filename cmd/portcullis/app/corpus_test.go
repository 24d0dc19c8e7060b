package app

import (
	"encoding/json"
	"testing"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/report"
)

// TestValidateCorpus runs the install manifests of public projects
// (testdata/corpus, see its README) through validate with the built-in
// policies: a directory with a kustomization beside the manifests, a large
// multi-document file and a kustomize overlay with a component.
func TestValidateCorpus(t *testing.T) {
	args := []string{"validate", "-o", "json",
		"-f", "testdata/corpus/kube-state-metrics", "-f", "testdata/corpus/ingress-nginx",
		"-k", "testdata/corpus/metrics-server/overlays/release"}
	tests := []struct {
		name   string
		config string
		want   report.Summary
	}{
		// kube-state-metrics and metrics-server install into kube-system,
		// exempt by default.
		{"defaults", "", report.Summary{Objects: 33, Admitted: 26, Exempt: 7, Skipped: 1}},
		{"no exempt namespaces", "testdata/corpus-no-exemptions.yaml", report.Summary{Objects: 33, Admitted: 33, Warned: 1, Skipped: 1,
			Policies: map[string]*report.PolicyCount{"required_labels": {Warned: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := args
			if tt.config != "" {
				a = append(a, "--config", tt.config)
			}
			code, out, errOut := run(t, "", a...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var r report.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatal(err)
			}
			if tt.want.Policies == nil {
				tt.want.Policies = map[string]*report.PolicyCount{}
			}
			got, _ := json.Marshal(r.Summary)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("summary\n got %s\nwant %s", got, want)
			}
			for _, res := range r.Results {
				if res.Line == 0 && res.Source != "testdata/corpus/metrics-server/overlays/release" {
					t.Errorf("%s: no line", res.Location())
				}
			}
		})
	}
}
