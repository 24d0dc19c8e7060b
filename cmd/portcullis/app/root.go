// Package app holds Portcullis' commands. Each subcommand has an options
// struct with AddFlags, Validate and Run, so tests call them directly.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/version"
)

// Exit codes shared by every command.
const (
	// ExitOK means success (validate: everything admitted).
	ExitOK = 0
	// ExitDenied means validate denied at least one object, or tests failed.
	ExitDenied = 1
	// ExitUsage means bad flags, unreadable input or policies that do not load.
	ExitUsage = 2
	// ExitEvalError means validate could not evaluate a policy (an error or
	// a timeout): distinct from a denial.
	ExitEvalError = 3
	// ExitInterrupted and ExitTerminated (128 + the signal's number) mean
	// validate stopped on SIGINT or SIGTERM and wrote no results.
	ExitInterrupted = 130
	ExitTerminated  = 143
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as a usage or input error (exit 2).
func usageError(err error) error { return &exitError{code: ExitUsage, err: err} }

// IO bundles the streams commands read and write.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

// options is what every subcommand's options struct provides.
type options interface {
	Validate() error
	Run(ctx context.Context, streams IO) error
}

// runE validates the options (a failure is a usage error, exit 2) and runs
// the command with cobra's context.
func runE(o options, streams IO) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := o.Validate(); err != nil {
			return usageError(err)
		}
		return o.Run(cmd.Context(), streams)
	}
}

// NewRootCommand builds the portcullis command tree.
func NewRootCommand(streams IO) *cobra.Command {
	root := &cobra.Command{
		Use:           "portcullis",
		Short:         "Kubernetes admission webhook policy server (Rego)",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints the same line as `portcullis version`.
		Version: version.Get().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.AddCommand(newServeCommand(streams), newValidateCommand(streams), newAuditCommand(streams), newTestCommand(streams), newVersionCommand(streams), newWebhooksCommand(streams))
	return root
}

// Main runs the command line and returns the process exit code.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// SIGINT and SIGTERM cancel ctx: serve shuts down gracefully, validate
	// stops and exits 130 or 143.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var got atomic.Value
	go func() {
		select {
		case s := <-sigs:
			got.Store(s)
			cancel()
		case <-ctx.Done():
		}
	}()
	root := NewRootCommand(IO{In: in, Out: out, Err: errOut})
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, errInterrupted) {
		code, name := ExitInterrupted, "SIGINT"
		if s, _ := got.Load().(os.Signal); s == syscall.SIGTERM {
			code, name = ExitTerminated, "SIGTERM"
		}
		fmt.Fprintf(errOut, "Error: %s: %v\n", name, err)
		return code
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(errOut, "Error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(errOut, "Error:", err)
	return ExitUsage
}
