package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

// server is one process under test.
type server struct {
	name  string
	url   string // https://127.0.0.1:port
	cmd   *exec.Cmd
	log   *os.File
	ready func(context.Context) error
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs bin pinned to cpu (taskset, when available) with GOMAXPROCS=1.
func start(name, dir, cpu string, env []string, bin string, args ...string) (*server, error) {
	argv := append([]string{bin}, args...)
	if ts, err := exec.LookPath("taskset"); err == nil && cpu != "" {
		argv = append([]string{ts, "-c", cpu}, argv...)
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "GOMAXPROCS=1"), env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &server{name: name, cmd: cmd, log: logf}, nil
}

// wait polls ready until it succeeds or the process exits.
func (s *server) wait(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.ready(ctx); err == nil {
			return nil
		}
		if s.cmd.ProcessState != nil {
			break
		}
		if err := syscall.Kill(s.cmd.Process.Pid, 0); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not become ready; log: %s\n%s", s.name, s.log.Name(), tail(s.log.Name()))
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.log.Close()
}

// memory returns the process's resident set and its high-water mark, in MB.
func (s *server) memory() (rss, hwm float64) {
	rss, hwm, _ = s.memoryDetail()
	return rss, hwm
}

// memoryDetail is memory and the anonymous part of the resident set
// (RssAnon: heap, stacks), in MB. The rest of VmRSS is file-backed: the
// pages of the binary's code and read-only data it has touched (Portcullis's
// ~100 MB of loadable segments are nearly all resident after start-up),
// shared and reclaimable, which no request changes.
func (s *server) memoryDetail() (rss, hwm, anon float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		case "RssAnon:":
			anon = kb / 1024
		}
	}
	return rss, hwm, anon
}

func httpsReady(caPEM []byte, url string) func(context.Context) error {
	c, _ := newClient(caPEM, 1)
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}

func httpReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}

// startPortcullis runs `portcullis serve` with the given extra flags.
func startPortcullis(name, dir, cpu, bin, certDir string, env, extra []string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	hp, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve",
		"--port", strconv.Itoa(port),
		"--cert-dir", certDir,
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(hp),
		"--metrics-bind-address", "",
		"--shutdown-delay", "0s",
	}, extra...)
	s, err := start(name, dir, cpu, env, bin, args...)
	if err != nil {
		return nil, err
	}
	s.url = "https://127.0.0.1:" + strconv.Itoa(port)
	s.ready = httpReady("http://127.0.0.1:" + strconv.Itoa(hp) + "/readyz")
	return s, nil
}

// startOPA runs stock `opa run --server` on the bundle directory, with TLS.
// Its per-request access log lines are moved to debug (so not written):
// Portcullis writes its decision log line, OPA writes nothing per request,
// which errs in OPA's favour.
func startOPA(name, dir, cpu, bin, certDir, bundle string, caPEM []byte, env []string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s, err := start(name, dir, cpu, env, bin, "run", "--server",
		"--addr", addr,
		"--tls-cert-file", filepath.Join(certDir, "tls.crt"),
		"--tls-private-key-file", filepath.Join(certDir, "tls.key"),
		"--log-level-request", "debug",
		"--disable-telemetry",
		bundle)
	if err != nil {
		return nil, err
	}
	s.url = "https://" + addr
	s.ready = httpsReady(caPEM, s.url+"/health")
	return s, nil
}

// writeOPABundle lays out what stock OPA loads: the same Rego modules
// Portcullis embeds (tests excluded), the merged configuration as
// data.portcullis.config, and a system.main module that turns the validating
// policies' deny sets into an AdmissionReview response, the pattern of OPA's
// admission-control tutorial. It honours what Portcullis honours cheaply
// (exempt namespaces, enforcement: warn policies warn) but, like the
// tutorial, evaluates every validating policy on every request.
func writeOPABundle(ctx context.Context, dir string) error {
	err := fs.WalkDir(policies.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(name, ".rego") || strings.HasSuffix(name, "_test.rego") || strings.Contains(name, "testdata/") {
			return nil
		}
		b, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copy policies: %w", err)
	}
	defaults, err := policies.FS.ReadFile(policies.ConfigFile)
	if err != nil {
		return err
	}
	reg, err := engine.Load(ctx, engine.Source{Policies: policies.FS, Configs: [][]byte{defaults}})
	if err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	data, err := json.Marshal(map[string]any{"portcullis": map[string]any{"config": reg.Config()}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "data.json"), data, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "main.rego"), []byte(systemMain(reg)), 0o644)
}

func systemMain(reg *engine.Registry) string {
	var b strings.Builder
	b.WriteString(`# Generated by cmd/bench-load: the AdmissionReview response for stock OPA,
# after OPA's admission-control tutorial (system.main is OPA's default decision).
package system

main := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"response": response,
}

default uid := ""

uid := input.request.uid

exempt if {
	some pattern in data.portcullis.config.exempt_namespaces
	glob.match(pattern, [], input.request.namespace)
}

warnings_field := {"warnings": w} if {
	w := [m | some m in warning]
	count(w) > 0
} else := {}

response := object.union({
	"uid": uid,
	"allowed": false,
	"status": {"code": 403, "reason": "Forbidden", "message": concat("; ", deny)},
}, warnings_field) if {
	count(deny) > 0
} else := object.union({"uid": uid, "allowed": true}, warnings_field)
`)
	var ids []string
	for _, p := range reg.Policies() {
		if p.Kind == engine.Validating {
			ids = append(ids, p.ID)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		p := reg.Policy(id)
		set := "deny"
		format := `"[` + id + `] %s"`
		switch p.Enforcement {
		case engine.EnforceWarn:
			set, format = "warning", `"`+id+`: %s"`
		case engine.EnforceAudit:
			continue
		}
		fmt.Fprintf(&b, "\n%s contains msg if {\n\tnot exempt\n\tsome d in data.portcullis.%s.deny\n\tmsg := sprintf(%s, [d.msg])\n}\n", set, id, format)
		fmt.Fprintf(&b, "\nwarning contains msg if {\n\tnot exempt\n\tsome d in data.portcullis.%s.warn\n\tmsg := sprintf(%q, [d.msg])\n}\n", id, id+": %s")
	}
	return b.String()
}

// checkOPA sends one body to OPA's default decision and checks it answers an
// AdmissionReview, so a broken bundle fails the run rather than measuring errors.
func checkOPA(ctx context.Context, c *http.Client, s *server, b []byte) error {
	status, out, err := shot(ctx, c, s.url+"/", b)
	if err != nil {
		return err
	}
	var rv struct {
		Kind     string          `json:"kind"`
		Response json.RawMessage `json:"response"`
	}
	if status != http.StatusOK || json.Unmarshal(out, &rv) != nil || rv.Kind != "AdmissionReview" || len(rv.Response) == 0 {
		return fmt.Errorf("opa POST /: status %d, body %.300s", status, out)
	}
	return nil
}
