package main

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// The flood body is a ConfigMap review of about the asked size, every value
// a URL with a password; streamed bodies are valid JSON of the stated
// length, each a new object and UID.
func TestCredentialConfigMap(t *testing.T) {
	b, err := credentialConfigMap(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if b.size < 1<<20 || b.size > 1<<20+8<<10 {
		t.Errorf("size %d, want about 1 MiB", b.size)
	}
	names := map[string]bool{}
	for range 2 {
		r, n := b.reader()
		raw, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(raw)) != n {
			t.Errorf("read %d bytes, stated %d", len(raw), n)
		}
		var rv struct {
			Request struct {
				UID    string `json:"uid"`
				Object struct {
					Kind     string `json:"kind"`
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
					Data map[string]string `json:"data"`
				} `json:"object"`
			} `json:"request"`
		}
		if err := json.Unmarshal(raw, &rv); err != nil {
			t.Fatal(err)
		}
		if rv.Request.Object.Kind != "ConfigMap" || !strings.HasPrefix(rv.Request.UID, "bench-") {
			t.Errorf("kind %q, uid %q", rv.Request.Object.Kind, rv.Request.UID)
		}
		names[rv.Request.Object.Metadata.Name] = true
		for k, v := range rv.Request.Object.Data {
			if !strings.Contains(v, ":s3cr3t-canary@") {
				t.Fatalf("value of %s has no password: %q", k, v)
			}
		}
	}
	if len(names) != 2 {
		t.Errorf("object names %v: want a new object per request", names)
	}
	var st statuses
	st.add(200)
	st.add(429)
	st.add(429)
	st.add(0)
	if got, want := st.String(), "4 sent (transport error: 1, 200: 1, 429: 2)"; got != want {
		t.Errorf("statuses = %q, want %q", got, want)
	}
}
