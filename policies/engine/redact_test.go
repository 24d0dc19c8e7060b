package engine

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 600)
	for in, want := range map[string]string{
		// Credentials in image references and URLs.
		`container "app" image "user:hunter2@registry.example.com/app:1.0" is not allowed`: `container "app" image "REDACTED@registry.example.com/app:1.0" is not allowed`,
		`pulled from https://bot:s3cr3t-T0KEN@git.example.com/repo.git`:                    `pulled from https://REDACTED@git.example.com/repo.git`,
		`user:hunter2@registry.example.com/app:1.0`:                                        `REDACTED@registry.example.com/app:1.0`,
		`images: ["a:b@r.io/x", "c:@r.io/y"]`:                                              `images: ["REDACTED@r.io/x", "REDACTED@r.io/y"]`,
		`url=https://u:p@h/`:                                                               `url=https://REDACTED@h/`,
		// Not credentials: tag plus digest, a digest alone, a registry port, an e-mail address.
		`image "nginx:1.25@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"`:        `image "nginx:1.25@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"`,
		`image "registry:5000/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"`: `image "registry:5000/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"`,
		`docker.io/library/nginx:1.25@sha256:0123456789abcdef0123456789abcdef`:                              `docker.io/library/nginx:1.25@sha256:0123456789abcdef0123456789abcdef`,
		`owner alice@example.com`: `owner alice@example.com`,
		// Numbers: int64 and below unchanged, longer runs clipped.
		`container "app" uses hostPort 8080`:     `container "app" uses hostPort 8080`,
		`runAsUser=9223372036854775807`:          `runAsUser=9223372036854775807`,
		"hostPort " + strings.Repeat("9", 10001): "hostPort 99999999999999999999…(10001 digits)",
		"a 123456789012345678901 b":              "a 12345678901234567890…(21 digits) b",
		// Long quoted values clipped, short ones not.
		`name "` + long + `" bad`:      `name "` + long[:127] + `…(600 bytes)" bad`,
		`name "` + long[:500] + `" ok`: `name "` + long[:500] + `" ok`,
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%.80q)\n got %.200q\nwant %.200q", in, got, want)
		}
	}
	if got := Redact(strings.Repeat("a b ", 3000)); len(got) > maxMessage+len("…") {
		t.Errorf("message of %d bytes", len(got))
	}
}

// Messages, warnings and details leaving the engine carry no credentials
// and no oversized numbers: the canary password never appears, and a 7-byte
// number does not grow into a 10 KB message.
func TestDecisionTextsAreRedacted(t *testing.T) {
	t.Parallel()
	const password = "CANARY-pw-0x5eed"
	body := `deny contains {"msg": sprintf("container %q image %q uses hostPort %d", [c.name, c.image, p.hostPort]), "image": c.image} if {
	some c in input.request.object.spec.containers
	some p in c.ports
}

warn contains {"msg": sprintf("image %s", [c.image])} if {
	some c in input.request.object.spec.containers
}`
	reg := mustLoad(t, mapFS(map[string]string{"p/p.rego": validating("p", body)}))
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"},"spec":{"containers":[{"name":"app","image":"bot:` + password + `@registry.example.com/app:1.0","ports":[{"containerPort":80,"hostPort":1e10000}]}]}}`)
	req := podRequest(t, "default", nil)
	req.Object.Raw = raw
	dec := evaluate(t, reg, Validating, req)
	want := `container "app" image "REDACTED@registry.example.com/app:1.0" uses hostPort 99999999999999999999…(10001 digits)`
	if len(dec.Violations) != 1 || !strings.HasPrefix(dec.Violations[0].Message, `container "app" image "REDACTED@registry.example.com/app:1.0" uses hostPort `) || len(dec.Violations[0].Message) > 200 {
		t.Fatalf("violations %+v\nwant a message like %q", dec.Violations, want)
	}
	if got := dec.Violations[0].Details; !reflect.DeepEqual(got, map[string]any{"image": "REDACTED@registry.example.com/app:1.0"}) {
		t.Errorf("details %v", got)
	}
	if want := []string{"p: image REDACTED@registry.example.com/app:1.0"}; !reflect.DeepEqual(dec.Warnings, want) {
		t.Errorf("warnings %q, want %q", dec.Warnings, want)
	}
	b, _ := json.Marshal(dec)
	if strings.Contains(string(b), password) || strings.Contains(dec.Message(), password) {
		t.Errorf("the password leaked: %s", b)
	}
}

// Redact never panics, bounds its output, keeps valid UTF-8 valid, and a
// user:password@ planted at a token boundary never survives.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		`container "app" image "user:pw@r.io/app:1" is not allowed`,
		"hostPort " + strings.Repeat("9", 40),
		`"` + strings.Repeat("x", 700) + `"`,
		"nginx:1@sha256:0123456789abcdef0123456789abcdef",
		"é@:\"",
	} {
		f.Add(s, "pw")
	}
	f.Fuzz(func(t *testing.T, s, pw string) {
		out := Redact(s)
		if len(out) > maxMessage+len("…") {
			t.Fatalf("%d bytes out", len(out))
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of valid input: %q", out)
		}
		if pw == "" || strings.ContainsAny(pw, "/@\"' \t\n\r\v\f") || !utf8.ValidString(pw) {
			return
		}
		const canaryPw = "Zq9-canary"
		planted := s + ` "bot:` + canaryPw + pw + `@registry.example.com/app" end`
		if len(planted) > maxMessage/2 {
			return
		}
		if got := Redact(planted); strings.Contains(got, canaryPw+pw+"@") {
			t.Fatalf("credential survived: %q", got)
		}
	})
}

// A policy that quotes every value of a Secret gets every one redacted,
// whether the redactor searches the texts for each value (few) or scans
// them once for all (many: past searchBudget).
func TestRedactSecretsEveryValue(t *testing.T) {
	t.Parallel()
	reg := mustLoad(t, mapFS(map[string]string{"w.rego": validating("w", `deny contains "never" if false

warn contains base64.decode(v) if some v in input.request.object.data`)}))
	for _, n := range []int{3, 5000} {
		data := map[string]any{}
		for i := range n {
			data[fmt.Sprintf("k%05d", i)] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "value-%010d", i))
		}
		secret := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "db", "namespace": "shop"}, "data": data}
		dec := evaluate(t, reg, Validating, request(t, "Secret", "secrets", "", "shop", "db", "CREATE", secret))
		cost := 2 * n * n * len("w: value-0000000000\x00") // what replacerFor weighs against searchBudget
		if (n == 5000) != (cost > searchBudget) {
			t.Fatalf("n=%d does not exercise the path it is meant to", n)
		}
		if len(dec.Warnings) != n {
			t.Fatalf("n=%d: %d warnings", n, len(dec.Warnings))
		}
		for _, w := range dec.Warnings {
			if w != "w: [REDACTED]" {
				t.Fatalf("n=%d: warning %q, want %q", n, w, "w: [REDACTED]")
			}
		}
	}
}

// BenchmarkRedactSecrets measures redactSecrets on a hostile Secret (n
// data values, ~36 bytes of body each): one short warning (each value
// searched for) and one warning per value (past searchBudget: one scan).
func BenchmarkRedactSecrets(b *testing.B) {
	for _, tc := range []struct {
		n    int
		each bool
	}{{100000, false}, {30000, true}} {
		data := map[string]any{}
		var warnings []string
		for i := range tc.n {
			v := fmt.Sprintf("value-%010d", i)
			data[fmt.Sprintf("k%06d", i)] = base64.StdEncoding.EncodeToString([]byte(v))
			if tc.each {
				warnings = append(warnings, "w: "+v)
			}
		}
		if !tc.each {
			warnings = []string{"w: a Secret"}
		}
		secret := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "db", "namespace": "shop"}, "data": data}
		input, err := toInput(request(b, "Secret", "secrets", "", "shop", "db", "CREATE", secret))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("values=%d/warnings=%d", tc.n, len(warnings)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				dec := &Decision{Warnings: slices.Clone(warnings)}
				redactSecrets(dec, input)
			}
		})
	}
}
