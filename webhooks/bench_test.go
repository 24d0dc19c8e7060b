package webhooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

// benchSize is a generated pod: containers × env vars per container.
type benchSize struct {
	name         string
	containers   int
	envPerCtr    int
	minKB, maxKB int // the review's size must fall in this range
}

var benchSizes = []benchSize{
	{name: "small", containers: 1, envPerCtr: 6, minKB: 2, maxKB: 4},
	{name: "large", containers: 30, envPerCtr: 8, minKB: 45, maxKB: 55},
}

// benchPod builds a realistic Deployment-made pod deterministically: labels
// and annotations, env vars, probes, resources, volume mounts and a
// restricted security context.
func benchPod(containers, envPerCtr int) map[string]any {
	var ctrs []any
	for i := 0; i < containers; i++ {
		name := fmt.Sprintf("worker-%02d", i)
		if i == 0 {
			name = "app"
		}
		var env []any
		for j := 0; j < envPerCtr; j++ {
			env = append(env, map[string]any{"name": fmt.Sprintf("SETTING_%02d", j), "value": fmt.Sprintf("value-%02d-%02d", i, j)})
		}
		env = append(env,
			map[string]any{"name": "POD_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"apiVersion": "v1", "fieldPath": "metadata.name"}}},
			map[string]any{"name": "DB_PASSWORD", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "db", "key": "password"}}},
		)
		probe := func(path string) map[string]any {
			return map[string]any{
				"httpGet":             map[string]any{"path": path, "port": 8080, "scheme": "HTTP"},
				"initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3,
			}
		}
		ctrs = append(ctrs, map[string]any{
			"name":            name,
			"image":           fmt.Sprintf("registry.example.com/payments/%s:1.%d.0", name, i),
			"imagePullPolicy": "IfNotPresent",
			"args":            []any{"--port=8080", "--log-format=json", fmt.Sprintf("--shard=%d", i)},
			"ports":           []any{map[string]any{"name": "http", "containerPort": 8080, "protocol": "TCP"}},
			"env":             env,
			"resources": map[string]any{
				"requests": map[string]any{"cpu": "100m", "memory": "128Mi"},
				"limits":   map[string]any{"cpu": "500m", "memory": "256Mi"},
			},
			"livenessProbe":  probe("/healthz"),
			"readinessProbe": probe("/readyz"),
			"volumeMounts": []any{
				map[string]any{"name": "config", "mountPath": "/etc/app", "readOnly": true},
				map[string]any{"name": "tmp", "mountPath": "/tmp"},
				map[string]any{"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true},
			},
			"securityContext": map[string]any{
				"allowPrivilegeEscalation": false,
				"readOnlyRootFilesystem":   true,
				"runAsNonRoot":             true,
				"capabilities":             map[string]any{"drop": []any{"ALL"}},
			},
			"terminationMessagePath":   "/dev/termination-log",
			"terminationMessagePolicy": "File",
		})
	}
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name":         "payments-api-7d9f8b6c5d-x2x7q",
			"generateName": "payments-api-7d9f8b6c5d-",
			"namespace":    "payments",
			"labels": map[string]any{
				"app.kubernetes.io/name":     "payments-api",
				"app.kubernetes.io/instance": "payments-api-prod",
				"app.kubernetes.io/version":  "1.4.2",
				"pod-template-hash":          "7d9f8b6c5d",
			},
			"annotations": map[string]any{
				"kubectl.kubernetes.io/default-container": "app",
				"prometheus.io/scrape":                    "true",
				"prometheus.io/port":                      "8080",
			},
			"ownerReferences": []any{map[string]any{
				"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "payments-api-7d9f8b6c5d",
				"uid": "5a1e2f0c-3b4d-4e6f-8a9b-0c1d2e3f4a5b", "controller": true, "blockOwnerDeletion": true,
			}},
		},
		"spec": map[string]any{
			"serviceAccountName":            "payments-api",
			"automountServiceAccountToken":  false,
			"enableServiceLinks":            false,
			"restartPolicy":                 "Always",
			"terminationGracePeriodSeconds": 30,
			"dnsPolicy":                     "ClusterFirst",
			"securityContext": map[string]any{
				"runAsNonRoot":   true,
				"runAsUser":      10001,
				"fsGroup":        10001,
				"seccompProfile": map[string]any{"type": "RuntimeDefault"},
			},
			"containers": ctrs,
			"volumes": []any{
				map[string]any{"name": "config", "configMap": map[string]any{"name": "payments-api"}},
				map[string]any{"name": "tmp", "emptyDir": map[string]any{"sizeLimit": "64Mi"}},
				map[string]any{"name": "kube-api-access-x7k2p", "projected": map[string]any{"sources": []any{
					map[string]any{"serviceAccountToken": map[string]any{"expirationSeconds": 3607, "path": "token"}},
				}}},
			},
		},
	}
}

// benchReview wraps a pod in the AdmissionReview the apiserver sends on CREATE.
func benchReview(tb testing.TB, s benchSize) []byte {
	tb.Helper()
	review := map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":             "3c9e2a1f-7b6d-4c5e-8f9a-1b2c3d4e5f60",
			"kind":            map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"resource":        map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"requestKind":     map[string]any{"group": "", "version": "v1", "kind": "Pod"},
			"requestResource": map[string]any{"group": "", "version": "v1", "resource": "pods"},
			"namespace":       "payments",
			"operation":       "CREATE",
			"userInfo": map[string]any{
				"username": "system:serviceaccount:kube-system:replicaset-controller",
				"uid":      "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
				"groups":   []any{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
			},
			"object":    benchPod(s.containers, s.envPerCtr),
			"oldObject": nil,
			"dryRun":    false,
			"options":   map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
		},
	}
	b, err := json.Marshal(review)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// defaultEngine loads the embedded default policy set with its documented
// defaults, as `portcullis serve` does with no flags.
func defaultEngine(tb testing.TB) *engine.Engine {
	tb.Helper()
	defaults, err := policies.FS.ReadFile(policies.ConfigFile)
	if err != nil {
		tb.Fatal(err)
	}
	return newEngine(tb, policies.FS, defaults)
}

// benchWebhook is wired like serve's, with a JSON decision log to io.Discard
// so the log line's cost is part of the measurement.
func benchWebhook(eng Evaluator, phase engine.Phase) *Webhook {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	wh := webhook(eng, phase, log, nil)
	wh.Handler.(*Handler).Timeout = 0 // the deadline is the benchmark's, not the handler's
	a, err := NewAdmission(AdmissionOptions{
		LargeRequestBytes: DefaultLargeRequestBytes, SmallEvaluations: 8, LargeEvaluations: 1,
		SmallBytes: DefaultSmallBytesInFlight, LargeBytes: DefaultLargeBytesInFlight,
	})
	if err != nil {
		panic(err)
	}
	wh.Admission = a // serve's lanes, so their cost is measured too
	return wh
}

type benchCase struct {
	name  string
	eng   *engine.Engine
	phase engine.Phase
}

// sampleEngine loads only the spine's two sample policies (required_labels,
// validating; default_resources, mutating, switched on) and the shared lib:
// the set issue 2's 3x-time / 2x-bytes target is stated for.
func sampleEngine(tb testing.TB) *engine.Engine {
	tb.Helper()
	fsys := fstest.MapFS{}
	for _, name := range []string{"lib/kubernetes.rego", "required_labels/required_labels.rego", "default_resources/default_resources.rego"} {
		src, err := policies.FS.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		fsys[name] = &fstest.MapFile{Data: src}
	}
	return newEngine(tb, fsys, []byte("policies: {default_resources: {enabled: true}}"))
}

func benchCases(tb testing.TB) []benchCase {
	baseline := newEngine(tb, fstest.MapFS{})
	samples := sampleEngine(tb)
	defaults := defaultEngine(tb)
	return []benchCase{
		{"baseline", baseline, engine.Validating},
		{"samples-validating", samples, engine.Validating},
		{"samples-mutating", samples, engine.Mutating},
		{"validating", defaults, engine.Validating},
		{"mutating", defaults, engine.Mutating},
	}
}

// BenchmarkServe measures decode → evaluate → encode through
// Webhook.ServeHTTP (no network): /small and /large pods, each with no
// policies (baseline) and with the embedded default set in each phase.
func BenchmarkServe(b *testing.B) {
	cases := benchCases(b)
	for _, size := range benchSizes {
		body := benchReview(b, size)
		for _, tc := range cases {
			b.Run(size.name+"/"+tc.name, func(b *testing.B) {
				wh := benchWebhook(tc.eng, tc.phase)
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					rec := httptest.NewRecorder()
					wh.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}

// The benchmark inputs are what they claim: deterministic, of the stated
// size, and answered 200 on every path (so `go test` catches a broken bench).
func TestBenchInputs(t *testing.T) {
	t.Parallel()
	cases := benchCases(t)
	for _, size := range benchSizes {
		body := benchReview(t, size)
		if again := benchReview(t, size); !bytes.Equal(body, again) {
			t.Errorf("%s: review not deterministic", size.name)
		}
		if kb := len(body) / 1024; kb < size.minKB || kb >= size.maxKB {
			t.Errorf("%s: review is %d bytes, want %d-%d KB", size.name, len(body), size.minKB, size.maxKB)
		}
		for _, tc := range cases {
			rec := post(benchWebhook(tc.eng, tc.phase), body)
			if rec.Code != http.StatusOK {
				t.Fatalf("%s/%s: status %d: %s", size.name, tc.name, rec.Code, rec.Body)
			}
			resp := decodeResponse(t, rec)
			t.Logf("%s/%s: %d bytes, allowed %v, %d warnings, patch %s, message %q",
				size.name, tc.name, len(body), resp.Allowed, len(resp.Warnings), resp.Patch, resp.Result.Message)
		}
	}
}
