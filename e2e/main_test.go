//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// cluster is the control plane shared by every test in the package (starting
// one takes seconds; tests that change cluster-wide state clean up after
// themselves).
var cluster *Cluster

// Cluster is a running kube-apiserver and etcd.
type Cluster struct {
	// Config reaches the apiserver as a cluster admin.
	Config *rest.Config
	// Client is a clientset on Config.
	Client kubernetes.Interface
	// KubeVersion is the Kubernetes version the binaries were built at,
	// from tools/go.mod (e.g. "v1.37.1").
	KubeVersion string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// portcullisBin is the portcullis binary built from this tree by TestMain.
var portcullisBin string

func runMain(m *testing.M) int {
	// The binary builds while the control plane starts.
	binDir, err := os.MkdirTemp("", "portcullis-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	built := make(chan error, 1)
	go func() { built <- buildPortcullis(filepath.Join(binDir, "portcullis")) }()
	c, stop, err := startCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		<-built
		return 1
	}
	cluster = c
	code := 0
	if err := <-built; err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	} else {
		portcullisBin = filepath.Join(binDir, "portcullis")
		code = m.Run()
	}
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stop control plane:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// buildPortcullis builds ./cmd/portcullis into out (the Go build cache
// makes a warm build a link step).
func buildPortcullis(out string) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/portcullis")
	cmd.Dir = ".."
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/portcullis: %w", err)
	}
	fmt.Fprintf(os.Stderr, "e2e: portcullis built in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// startCluster starts etcd and kube-apiserver with envtest.
func startCluster() (*Cluster, func() error, error) {
	version, err := pinnedKubeVersion()
	if err != nil {
		return nil, nil, err
	}
	assets, err := kubeAssets()
	if err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		// Generous: two cores are shared with compilers in CI.
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
		AttachControlPlaneOutput: os.Getenv("E2E_CONTROL_PLANE_OUTPUT") != "",
	}
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("start control plane from %s: %w", assets, err)
	}
	fmt.Fprintf(os.Stderr, "e2e: control plane %s up in %s\n", version, time.Since(start).Round(time.Millisecond))
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = env.Stop()
		return nil, nil, fmt.Errorf("clientset: %w", err)
	}
	return &Cluster{Config: cfg, Client: client, KubeVersion: version}, env.Stop, nil
}

// kubeAssets returns the directory holding kube-apiserver and etcd:
// KUBEBUILDER_ASSETS when set (envtest reads it too), else what
// tools/build.sh prints (building only when its cache is cold).
func kubeAssets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("tools", "build.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("tools/build.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// pinnedKubeVersion reads the k8s.io/kubernetes version from tools/go.mod,
// the one version the e2e binaries are built at.
func pinnedKubeVersion() (string, error) {
	f, err := os.Open(filepath.Join("tools", "go.mod"))
	if err != nil {
		return "", fmt.Errorf("read pinned Kubernetes version: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "k8s.io/kubernetes" {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read tools/go.mod: %w", err)
	}
	return "", fmt.Errorf("no k8s.io/kubernetes requirement in tools/go.mod")
}
