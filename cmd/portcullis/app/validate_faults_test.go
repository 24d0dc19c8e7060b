package app

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestValidateEvaluationErrors: a policy that fails (eval_conflict_error)
// or times out, and one not evaluated because the deadline had passed, are
// errors in every format (exit 3), never denials.
func TestValidateEvaluationErrors(t *testing.T) {
	for _, format := range []string{"text", "json", "junit", "github", "sarif"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := run(t, "", "validate", "--builtin=false", "--policies", "testdata/policies-faulty", "-f", "testdata/manifests/faulty.yaml",
				"--eval-timeout", "1s", "-o", format)
			if code != ExitEvalError {
				t.Fatalf("exit %d, want %d; stderr %s", code, ExitEvalError, errOut)
			}
			if errOut != "" {
				t.Errorf("stderr %q", errOut)
			}
			golden(t, "faulty."+format, out)
		})
	}
}

// TestValidateBoundedInput: inputs that never end (devices, pipes, stdin,
// a symlink to /dev/zero inside a directory) stop at the size limit with
// an error naming the source; nothing is evaluated.
func TestValidateBoundedInput(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"device", []string{"-f", "/dev/zero"}, "", "Error: /dev/zero: input too large: the input passes the limit of 1048576 bytes in total (--max-input-bytes)\n"},
		{"symlink to a device in a directory", []string{"-f", dir}, "", "Error: " + filepath.Join(dir, "zero.yaml") + ": input too large: the input passes the limit of 1048576 bytes in total (--max-input-bytes)\n"},
		{"stdin", []string{"-f", "-"}, strings.Repeat("# padding\n", 110000), "Error: -: input too large: the input passes the limit of 1048576 bytes in total (--max-input-bytes)\n"},
		{"total over several files", []string{"-f", "testdata/manifests/mixed.yaml", "-f", "-"}, strings.Repeat("# padding\n", 104800), "Error: -: input too large: the input passes the limit of 1048576 bytes in total (--max-input-bytes)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"validate", "--builtin=false", "--policies", fixturePolicies, "--max-input-bytes", "1048576"}, tt.args...)
			code, out, errOut := run(t, tt.stdin, args...)
			if code != ExitUsage || out != "" || errOut != tt.want {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, no stdout, stderr %q", code, out, errOut, ExitUsage, tt.want)
			}
		})
	}
}

// TestValidateInterrupted runs the command in a child process (this test
// binary, see TestMain) and signals it: blocked on a FIFO that never gets a
// writer, or in the middle of a runaway evaluation, it stops promptly with
// 143 (SIGTERM) or 130 (SIGINT) and writes no results.
func TestValidateInterrupted(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	tests := []struct {
		name     string
		args     []string
		sig      syscall.Signal
		wantCode int
		wantErr  string
	}{
		{"SIGTERM while reading a FIFO", []string{"--builtin=false", "--policies", fixturePolicies, "-f", fifo}, syscall.SIGTERM, ExitTerminated,
			"Error: SIGTERM: interrupted; no results written\n"},
		{"SIGINT during a runaway evaluation", []string{"--builtin=false", "--policies", "testdata/policies-faulty", "-f", "testdata/manifests/faulty.yaml", "--eval-timeout", "10m"}, syscall.SIGINT, ExitInterrupted,
			"Error: SIGINT: interrupted; no results written\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"validate"}, tt.args...)...)
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Give it time to load the policies and block (the signal
			// handler is set first thing, so an early signal is handled
			// the same way).
			time.Sleep(3 * time.Second)
			start := time.Now()
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tt.wantCode {
				t.Fatalf("exit: %v, want code %d; stderr %q", err, tt.wantCode, errOut.String())
			}
			if out.String() != "" {
				t.Errorf("results written after the signal: %q", out.String())
			}
			if errOut.String() != tt.wantErr {
				t.Errorf("stderr %q, want %q", errOut.String(), tt.wantErr)
			}
			// Not a speed target: a guard that the signal stops the run
			// instead of waiting for the read or the evaluation.
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("stopped %v after the signal", d)
			}
		})
	}
}
