package app

import (
	"testing"
)

// A privileged pod in namespace legacy: the built-in pod_security denies it,
// unless --namespace-labels gives legacy the Pod Security label
// enforce=privileged (then only the warn label's warning remains).
func TestValidateNamespaceLabels(t *testing.T) {
	const pod = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: legacy, labels: {app.kubernetes.io/name: web}}
spec:
  containers:
    - name: app
      image: registry.example/app:1.0
      securityContext: {privileged: true}
`
	args := []string{"validate", "-f", "-", "--no-mutate", "--policy", "pod_security", "-q"}
	code, out, errOut := run(t, pod, args...)
	if code != ExitDenied {
		t.Fatalf("no labels: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, pod, append(args, "--namespace-labels",
		"legacy=pod-security.kubernetes.io/enforce=privileged,pod-security.kubernetes.io/warn=baseline")...)
	want := `WARN Pod legacy/web (-:1 #0)
  warning: pod_security: would violate PodSecurity "baseline:latest": privileged (container "app" must not set securityContext.privileged=true)
1 object: 1 admitted, 0 denied, 1 warned, 0 exempt, 0 invalid, 0 errors
  pod_security: 1 warned
`
	if code != ExitOK || out != want {
		t.Errorf("labelled: exit %d\n got %s\nwant %s\nstderr %s", code, out, want, errOut)
	}
	code, _, errOut = run(t, pod, append(args, "--namespace-labels", "legacy")...)
	if code != ExitUsage || errOut != "Error: --namespace-labels \"legacy\": want NAMESPACE=key=value[,key=value...]\n" {
		t.Errorf("bad flag: exit %d, stderr %q", code, errOut)
	}
}
