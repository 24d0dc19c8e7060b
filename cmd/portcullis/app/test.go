package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/policies/engine"
)

// TestOptions configure `portcullis test`.
type TestOptions struct {
	// Dir holds the policies and their *_test.rego (default: the built-in set).
	Dir     string
	Verbose bool
	Filter  string
	Timeout time.Duration
}

// AddFlags registers the test flags.
func (o *TestOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVarP(&o.Verbose, "verbose", "v", false, "print every test")
	fs.StringVarP(&o.Filter, "run", "r", "", "run only tests whose name contains this")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "timeout for each test")
}

// Validate checks the directory.
func (o *TestOptions) Validate() error {
	if o.Dir == "" {
		return nil
	}
	fi, err := os.Stat(o.Dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", o.Dir)
	}
	return nil
}

func newTestCommand(streams IO) *cobra.Command {
	o := &TestOptions{}
	cmd := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the Rego unit tests of a policy directory (default: the built-in policies)",
		Long: `Test runs the *_test.rego unit tests with OPA's test runner, as 'opa test DIR'
would, so a policy author needs only this binary.

Exit codes: 0 all tests pass, 1 a test failed, 2 the policies do not load.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Dir = args[0]
			}
			return runE(o, streams)(cmd, args)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// Run runs the tests and reports them like opa test.
func (o *TestOptions) Run(ctx context.Context, streams IO) error {
	var fsys fs.FS = policies.FS
	if o.Dir != "" {
		fsys = os.DirFS(o.Dir)
	}
	modules, err := engine.ParseModules(fsys, true)
	if err != nil {
		return usageError(err)
	}
	// The same sandbox as serve and validate: the tests run the policies
	// with the built-ins the configuration allows, and no others.
	sandbox, err := o.sandbox()
	if err != nil {
		return usageError(err)
	}
	if err := sandbox.Check(modules); err != nil {
		return usageError(err)
	}
	store := inmem.New()
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return err
	}
	defer store.Abort(ctx, txn)
	runner := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithEnablePrintStatements(true).WithCapabilities(sandbox.Capabilities())).
		SetStore(store).
		SetModules(modules).
		SetTimeout(o.Timeout).
		CapturePrintOutput(true).
		SetDefaultRegoVersion(ast.RegoV1)
	if o.Filter != "" {
		runner = runner.Filter(o.Filter)
	}
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return usageError(fmt.Errorf("run tests: %w", err))
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	rep := tester.PrettyReporter{Output: streams.Out, Verbose: o.Verbose}
	out := make(chan *tester.Result, len(results))
	failed := 0
	for _, r := range results {
		if r.Fail || r.Error != nil {
			failed++
		}
		out <- r
	}
	close(out)
	if err := rep.Report(out); err != nil {
		return err
	}
	if len(results) == 0 {
		return usageError(errors.New("no tests found"))
	}
	if failed > 0 {
		return &exitError{code: ExitDenied}
	}
	return nil
}

// sandbox is the policy sandbox under the configuration serve would merge
// for this directory (embedded defaults, then DIR/config.yaml).
func (o *TestOptions) sandbox() (*engine.Sandbox, error) {
	src, err := (&PolicySourceOptions{PoliciesDir: o.Dir}).Source()
	if err != nil {
		return nil, err
	}
	cfg, err := engine.MergeConfig(src.Configs...)
	if err != nil {
		return nil, err
	}
	return engine.NewSandbox(cfg)
}
