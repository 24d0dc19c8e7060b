//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAuditMeasure measures the audit on the e2e cluster: `portcullis audit`
// objects/s and peak RSS over N pods, and the background audit's extra
// server memory (informer cache) for them. Only with E2E_AUDIT_PODS=N (the
// README's figures); skipped otherwise, as it takes minutes.
func TestAuditMeasure(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("E2E_AUDIT_PODS"))
	if n <= 0 {
		t.Skip("E2E_AUDIT_PODS not set")
	}
	installReportCRDs(t)
	ns := newNamespace(t, nil)
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := plainPod(fmt.Sprintf("pod-%05d", i))
				p.Labels["app.kubernetes.io/instance"] = fmt.Sprintf("i%d", i%50)
				p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0])
				p.Spec.Containers[1].Name = "sidecar"
				if i%10 == 0 {
					p.Spec.Containers[0].SecurityContext.Privileged = new(bool)
					*p.Spec.Containers[0].SecurityContext.Privileged = true
					p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
				}
				if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("created %d pods in %s", n, time.Since(start).Round(time.Millisecond))
	kubeconfig := writeKubeconfig(t, "")

	// The CLI: built-in policies, this namespace's pods.
	cmd := exec.Command(portcullisBin, "audit", "--kubeconfig="+kubeconfig, "-n", ns, "--kind=pods", "-o", "json")
	var errOut strings.Builder
	cmd.Stderr = &errOut
	cmdStart := time.Now()
	out, _ := cmd.Output()
	took := time.Since(cmdStart)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	t.Logf("portcullis audit: %d pods in %s (%.0f objects/s wall, %d bytes of JSON), peak RSS %d MiB; %s",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), len(out), ru.Maxrss/1024, strings.TrimSpace(errOut.String()))

	// The server: resident memory with and without the background audit
	// holding the informer cache of every pod in the cluster.
	rss := func(audit bool) (float64, float64, float64) {
		args := []string{"--kubeconfig=" + kubeconfig}
		if audit {
			args = append(args, "--audit-interval=1h", "--audit-lease-namespace="+ns, "--audit-lease-name=measure-"+ns)
		} else {
			args = append(args, "--watch-namespaces")
		}
		s := startServer(t, serverOptions{FileCert: true, Args: args})
		defer s.Stop(t)
		if audit {
			ok, msg := pollUntil(10*time.Minute, time.Second, func(context.Context) (bool, string) {
				v := s.Metric(t, "portcullis_audit_objects")
				return v >= float64(n), fmt.Sprint("objects ", v)
			})
			if !ok {
				t.Fatalf("audit pass: %s", msg)
			}
		} else {
			time.Sleep(3 * time.Second)
		}
		return s.Metric(t, "process_resident_memory_bytes"), s.Metric(t, "go_memstats_heap_inuse_bytes"), s.Metric(t, "portcullis_audit_last_duration_seconds")
	}
	baseRSS, baseHeap, _ := rss(false)
	auditRSS, auditHeap, passSeconds := rss(true)
	t.Logf("serve: RSS %.0f MiB (heap %.0f MiB) without the audit; %.0f MiB (heap %.0f MiB) after a pass over %d pods in %.1fs (%.0f objects/s): +%.0f MiB RSS, +%.1f MiB heap per 10k pods",
		baseRSS/(1<<20), baseHeap/(1<<20), auditRSS/(1<<20), auditHeap/(1<<20), n, passSeconds, float64(n)/passSeconds,
		(auditRSS-baseRSS)/(1<<20)*10000/float64(n), (auditHeap-baseHeap)/(1<<20)*10000/float64(n))
}
