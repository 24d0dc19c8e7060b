package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/policies"
)

// benchBodies are the request bodies of `make bench-load` (written by
// `go run ./cmd/bench-load -dump webhooks/testdata/bench`).
var benchBodies = []string{"typical-pod", "large-pod", "deployment"}

func loadBuiltin(tb testing.TB) *Registry {
	tb.Helper()
	defaults, err := policies.FS.ReadFile(policies.ConfigFile)
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := Load(context.Background(), Source{Policies: policies.FS, Configs: [][]byte{defaults}})
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}

// noContainers is the typical pod with no containers and no init
// containers: what is left of its cost is the policies' per-request constant
// work.
const noContainers = "no-containers"

func benchRequest(tb testing.TB, name string) (*admissionv1.AdmissionRequest, []byte) {
	tb.Helper()
	file := name
	if name == noContainers {
		file = "typical-pod"
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "webhooks", "testdata", "bench", file+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	if name == noContainers {
		var review map[string]any
		if err := json.Unmarshal(raw, &review); err != nil {
			tb.Fatal(err)
		}
		spec := review["request"].(map[string]any)["object"].(map[string]any)["spec"].(map[string]any)
		spec["containers"] = []any{}
		delete(spec, "initContainers")
		if raw, err = json.Marshal(review); err != nil {
			tb.Fatal(err)
		}
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &review); err != nil {
		tb.Fatal(err)
	}
	return review.Request, raw
}

// BenchmarkEvaluate measures engine.Evaluate with the built-in policies on
// the bench-load bodies, per phase and per policy, without a decision cache.
func BenchmarkEvaluate(b *testing.B) {
	reg := loadBuiltin(b)
	eng := New(reg, nil)
	ctx := context.Background()
	for _, name := range append(benchBodies, noContainers) {
		req, _ := benchRequest(b, name)
		for _, phase := range []Phase{Validating, Mutating} {
			b.Run(name+"/"+string(phase), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := eng.Evaluate(ctx, phase, req, Options{}); err != nil {
						b.Fatal(err)
					}
				}
			})
			for _, p := range reg.selectPolicies(phase, req.Resource.Resource, req.SubResource, Options{}) {
				b.Run(name+"/"+string(phase)+"-"+p.ID, func(b *testing.B) {
					b.ReportAllocs()
					opts := Options{Policies: []string{p.ID}}
					for b.Loop() {
						if _, err := eng.Evaluate(ctx, phase, req, opts); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
		for _, phase := range []Phase{Validating, Mutating} {
			b.Run(name+"/"+string(phase)+"-unfolded", func(b *testing.B) {
				// Without the load-time evaluation of request-independent
				// rules (Source.NoFold): what folding saves.
				b.ReportAllocs()
				defaults, err := policies.FS.ReadFile(policies.ConfigFile)
				if err != nil {
					b.Fatal(err)
				}
				plain, err := Load(ctx, Source{Policies: policies.FS, Configs: [][]byte{defaults}, NoFold: true})
				if err != nil {
					b.Fatal(err)
				}
				eng := New(plain, nil)
				for b.Loop() {
					if _, err := eng.Evaluate(ctx, phase, req, Options{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(name+"/validating-parallel", func(b *testing.B) {
			// On the cores GOMAXPROCS gives (one request at a time: the
			// others are idle), split over the policies' groups.
			b.ReportAllocs()
			par := New(reg, nil, WithParallelism(1))
			for b.Loop() {
				if _, err := par.Evaluate(ctx, Validating, req, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/validating-cache-hit", func(b *testing.B) {
			b.ReportAllocs()
			cached := New(reg, nil, WithDecisionCache(DefaultCacheEntries, DefaultCacheBytes))
			for b.Loop() {
				if _, err := cached.Evaluate(ctx, Validating, req, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/validating-one-by-one", func(b *testing.B) {
			b.ReportAllocs()
			one := loadBuiltin(b)
			one.oneByOne = true
			eng := New(one, nil)
			for b.Loop() {
				if _, err := eng.Evaluate(ctx, Validating, req, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/input-before", func(b *testing.B) {
			// How the input was built before: the whole review through
			// encoding/json, then JSON → any → ast.
			b.ReportAllocs()
			for b.Loop() {
				raw, err := json.Marshal(reviewEnvelope{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Request: req})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ast.ValueFromReader(bytes.NewReader(raw)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/input", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := toInput(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCombinedQuery(b *testing.B) {
	reg := loadBuiltin(b)
	ctx := context.Background()
	for _, name := range benchBodies {
		req, _ := benchRequest(b, name)
		input, err := toInput(req)
		if err != nil {
			b.Fatal(err)
		}
		var parts []string
		var sel []*Policy
		for _, p := range reg.selectPolicies(Validating, req.Resource.Resource, req.SubResource, Options{}) {
			parts = append(parts, "x_"+p.ID+" := data.portcullis."+p.ID+".deny")
			sel = append(sel, p)
		}
		q := strings.Join(parts, "; ")
		pq, err := rego.New(rego.Query(q), rego.Compiler(reg.compiler), rego.Store(reg.store), rego.StoreReadAST(true)).PrepareForEval(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/combined", func(b *testing.B) {
			for b.Loop() {
				if _, err := pq.Eval(ctx, rego.EvalParsedInput(input)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/separate", func(b *testing.B) {
			for b.Loop() {
				for _, p := range sel {
					if _, err := p.query.Eval(ctx, rego.EvalParsedInput(input)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkParseJSON compares the direct decoder with ast.ValueFromReader.
func BenchmarkParseJSON(b *testing.B) {
	for _, name := range benchBodies {
		raw, err := os.ReadFile(filepath.Join("..", "..", "webhooks", "testdata", "bench", name+".json"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/direct", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := parseJSONValue(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/ValueFromReader", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := ast.ValueFromReader(bytes.NewReader(raw)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
