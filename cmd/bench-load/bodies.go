package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
)

// Placeholders replaced per request: every request gets its own UID (the
// apiserver's behaviour); in unique mode the object also gets its own label
// value, so no two objects are alike and a decision cache cannot help.
const (
	uidMark = "@@UID@@"
	seqMark = "@@SEQ@@"
)

// body is an AdmissionReview split around its placeholders.
type body struct {
	name  string
	parts [][]byte
	marks []string // marks[i] follows parts[i]
	size  int
	seq   atomic.Uint64
}

// render returns one request body. unique varies the object; the UID always varies.
func (b *body) render(unique bool) []byte {
	if unique {
		return b.renderSeq("")
	}
	return b.renderSeq("0")
}

// renderSeq returns one request body whose object carries seq in a label
// (empty: a value no other request has). Requests with the same seq differ
// only in their UID, as the pods of one ReplicaSet do.
func (b *body) renderSeq(seq string) []byte {
	n := b.seq.Add(1)
	uid := "bench-" + strconv.FormatUint(n, 10)
	if seq == "" {
		seq = strconv.FormatUint(n, 10)
	}
	out := make([]byte, 0, b.size+32)
	for i, p := range b.parts {
		out = append(out, p...)
		if i < len(b.marks) {
			switch b.marks[i] {
			case uidMark:
				out = append(out, uid...)
			case seqMark:
				out = append(out, seq...)
			}
		}
	}
	return out
}

func newBody(name string, review map[string]any) (*body, error) {
	raw, err := json.Marshal(review)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", name, err)
	}
	b := &body{name: name, size: len(raw)}
	rest := raw
	for {
		iu := bytes.Index(rest, []byte(uidMark))
		is := bytes.Index(rest, []byte(seqMark))
		if iu < 0 && is < 0 {
			b.parts = append(b.parts, rest)
			break
		}
		i, mark := iu, uidMark
		if iu < 0 || (is >= 0 && is < iu) {
			i, mark = is, seqMark
		}
		b.parts = append(b.parts, rest[:i])
		b.marks = append(b.marks, mark)
		rest = rest[i+len(mark):]
	}
	return b, nil
}

// bodies returns the three request bodies: a typical pod (~3 KB), a large pod
// (~50 KB, 30 containers) and a Deployment. All three are admitted by the
// default policies (allowed images, required labels, no secrets in env), so
// every policy runs to completion rather than stopping at an early deny.
func bodies() ([]*body, error) {
	var out []*body
	add := func(name string, review map[string]any) error {
		b, err := newBody(name, review)
		if err != nil {
			return err
		}
		out = append(out, b)
		return nil
	}
	if err := add("typical pod", review("Pod", "pods", "", "v1", pod(1))); err != nil {
		return nil, err
	}
	if err := add("large pod", review("Pod", "pods", "", "v1", pod(30))); err != nil {
		return nil, err
	}
	if err := add("deployment", review("Deployment", "deployments", "apps", "v1", deployment())); err != nil {
		return nil, err
	}
	return out, nil
}

func review(kind, resource, group, version string, obj map[string]any) map[string]any {
	gvk := map[string]any{"group": group, "version": version, "kind": kind}
	gvr := map[string]any{"group": group, "version": version, "resource": resource}
	return map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":             uidMark,
			"kind":            gvk,
			"resource":        gvr,
			"requestKind":     gvk,
			"requestResource": gvr,
			"name":            "api-7d4b9c8f6d-x2x7q",
			"namespace":       "team-a",
			"operation":       "CREATE",
			"userInfo": map[string]any{
				"username": "system:serviceaccount:kube-system:replicaset-controller",
				"uid":      "2b5b4b4e-3e7c-4f0e-9d6a-6f2b0c9b1a11",
				"groups":   []any{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
			},
			"object":    obj,
			"oldObject": nil,
			"dryRun":    false,
			"options":   map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
		},
	}
}

func labels() map[string]any {
	return map[string]any{
		"app.kubernetes.io/name":       "api",
		"app.kubernetes.io/instance":   "api-prod",
		"app.kubernetes.io/version":    "1.4.2",
		"app.kubernetes.io/component":  "backend",
		"app.kubernetes.io/part-of":    "shop",
		"app.kubernetes.io/managed-by": "helm",
		"pod-template-hash":            "7d4b9c8f6d",
		"bench.portcullis.dev/seq":     seqMark,
	}
}

func container(i int) map[string]any {
	name := "app"
	image := "registry.example.com/team-a/api:1.4.2"
	if i > 0 {
		name = fmt.Sprintf("sidecar-%d", i)
		image = fmt.Sprintf("registry.example.com/platform/sidecar-%d:2.%d.0", i, i)
	}
	env := []any{}
	for _, kv := range [][2]string{
		{"LOG_LEVEL", "info"}, {"LISTEN_ADDR", ":8080"}, {"METRICS_ADDR", ":9090"},
		{"UPSTREAM_URL", "http://backend.team-a.svc.cluster.local:8080"}, {"FEATURE_FLAGS", "a,b,c"},
	} {
		env = append(env, map[string]any{"name": kv[0], "value": kv[1]})
	}
	env = append(env,
		map[string]any{"name": "POD_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"apiVersion": "v1", "fieldPath": "metadata.name"}}},
		map[string]any{"name": "DB_PASSWORD", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "api-db", "key": "password"}}},
	)
	probe := func(path string, delay int) map[string]any {
		return map[string]any{
			"httpGet":             map[string]any{"path": path, "port": 8080, "scheme": "HTTP"},
			"initialDelaySeconds": delay, "periodSeconds": 10, "timeoutSeconds": 1,
			"successThreshold": 1, "failureThreshold": 3,
		}
	}
	return map[string]any{
		"name":            name,
		"image":           image,
		"imagePullPolicy": "IfNotPresent",
		"args":            []any{"--config=/etc/app/config.yaml", "--port=8080"},
		"ports": []any{
			map[string]any{"name": "http", "containerPort": 8080 + i, "protocol": "TCP"},
			map[string]any{"name": "metrics", "containerPort": 9090 + i, "protocol": "TCP"},
		},
		"env": env,
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "100m", "memory": "128Mi"},
			"limits":   map[string]any{"cpu": "500m", "memory": "256Mi"},
		},
		"livenessProbe":  probe("/healthz", 10),
		"readinessProbe": probe("/readyz", 5),
		"volumeMounts": []any{
			map[string]any{"name": "config", "mountPath": "/etc/app", "readOnly": true},
			map[string]any{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true},
		},
		"securityContext": map[string]any{
			"allowPrivilegeEscalation": false,
			"capabilities":             map[string]any{"drop": []any{"ALL"}},
			"readOnlyRootFilesystem":   true,
			"runAsNonRoot":             true,
		},
		"terminationMessagePath":   "/dev/termination-log",
		"terminationMessagePolicy": "File",
	}
}

func podSpec(containers int) map[string]any {
	cs := make([]any, containers)
	for i := range cs {
		cs[i] = container(i)
	}
	return map[string]any{
		"serviceAccountName":            "api",
		"automountServiceAccountToken":  true,
		"restartPolicy":                 "Always",
		"terminationGracePeriodSeconds": 30,
		"dnsPolicy":                     "ClusterFirst",
		"schedulerName":                 "default-scheduler",
		"priority":                      0,
		"enableServiceLinks":            true,
		"preemptionPolicy":              "PreemptLowerPriority",
		"securityContext": map[string]any{
			"runAsNonRoot":   true,
			"runAsUser":      10001,
			"fsGroup":        10001,
			"seccompProfile": map[string]any{"type": "RuntimeDefault"},
		},
		"containers": cs,
		"volumes": []any{
			map[string]any{"name": "config", "configMap": map[string]any{"name": "api-config", "defaultMode": 420}},
			map[string]any{"name": "kube-api-access-abcde", "projected": map[string]any{
				"defaultMode": 420,
				"sources": []any{
					map[string]any{"serviceAccountToken": map[string]any{"expirationSeconds": 3607, "path": "token"}},
					map[string]any{"configMap": map[string]any{"name": "kube-root-ca.crt", "items": []any{map[string]any{"key": "ca.crt", "path": "ca.crt"}}}},
				},
			}},
		},
		"tolerations": []any{
			map[string]any{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
			map[string]any{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
		},
		"nodeSelector": map[string]any{"kubernetes.io/os": "linux"},
	}
}

func pod(containers int) map[string]any {
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"generateName": "api-7d4b9c8f6d-",
			"namespace":    "team-a",
			"labels":       labels(),
			"annotations": map[string]any{
				"prometheus.io/scrape": "true",
				"prometheus.io/port":   "9090",
			},
			"ownerReferences": []any{map[string]any{
				"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d4b9c8f6d",
				"uid": "0f6d5d3e-8a2b-4c61-9b0e-3e9d1f7c2a55", "controller": true, "blockOwnerDeletion": true,
			}},
		},
		"spec": podSpec(containers),
	}
}

func deployment() map[string]any {
	tl := labels()
	delete(tl, "pod-template-hash")
	return map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata": map[string]any{
			"name":        "api",
			"namespace":   "team-a",
			"labels":      labels(),
			"annotations": map[string]any{"deployment.kubernetes.io/revision": "3"},
		},
		"spec": map[string]any{
			"replicas":             3,
			"revisionHistoryLimit": 10,
			"selector":             map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "api", "app.kubernetes.io/instance": "api-prod"}},
			"strategy":             map[string]any{"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxSurge": "25%", "maxUnavailable": "25%"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": tl, "annotations": map[string]any{"prometheus.io/scrape": "true"}},
				"spec":     podSpec(2),
			},
		},
	}
}
