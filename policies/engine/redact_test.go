package engine

import (
	"encoding/json"
	"reflect"
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
