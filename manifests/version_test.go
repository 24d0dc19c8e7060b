package manifests_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// releaseVersion is the one place the release version is written:
// cmd/portcullis/VERSION, which the Makefile stamps into binaries and images.
func releaseVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../cmd/portcullis/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(b))
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(v) {
		t.Fatalf("VERSION %q: want vMAJOR.MINOR.PATCH[-PRERELEASE]", v)
	}
	return v
}

// imageTagRE finds every mention of a Portcullis image tag in prose.
var imageTagRE = regexp.MustCompile(`ghcr\.io/portcullis/portcullis[:, ]+(?:newTag: )?(v\d+\.\d+\.\d+[0-9A-Za-z.-]*)`)

// TestVersionsAgree: the image the manifests pull, and every tag the README
// shows, are VERSION's.
func TestVersionsAgree(t *testing.T) {
	want := releaseVersion(t)

	b, err := os.ReadFile("base/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Images) != 1 || k.Images[0].NewName != "ghcr.io/portcullis/portcullis" || k.Images[0].NewTag != want {
		t.Errorf("base/kustomization.yaml images = %+v, want ghcr.io/portcullis/portcullis:%s", k.Images, want)
	}

	for _, doc := range []string{"../README.md", "README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range imageTagRE.FindAllStringSubmatch(string(b), -1) {
			if m[1] != want {
				t.Errorf("%s mentions %q, want tag %s (VERSION)", doc, m[0], want)
			}
		}
	}
}
