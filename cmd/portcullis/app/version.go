package app

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/version"
)

// VersionOptions configure `portcullis version`.
type VersionOptions struct {
	// Output is text (one line, as --version prints) or json.
	Output string
	// Info is the build to report (default: the running binary's).
	Info *version.Info
}

// AddFlags registers the version flags.
func (o *VersionOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Output, "output", "o", "text", "text or json")
}

// Validate checks the output format.
func (o *VersionOptions) Validate() error {
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("--output %q: must be text or json", o.Output)
	}
	return nil
}

// Run prints the build information.
func (o *VersionOptions) Run(_ context.Context, streams IO) error {
	info := version.Get()
	if o.Info != nil {
		info = *o.Info
	}
	if o.Output == "json" {
		b, err := info.JSON()
		if err != nil {
			return err
		}
		_, err = streams.Out.Write(b)
		return err
	}
	_, err := fmt.Fprintln(streams.Out, info.String())
	return err
}

func newVersionCommand(streams IO) *cobra.Command {
	o := &VersionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Long: `Version prints the release version, git commit, build date, Go version and
platform of this binary. Release builds carry the values set by the Makefile's
-ldflags; other builds report what Go recorded (the module version of
'go install ...@vX', the git revision and commit time of a 'go build' in a
checkout).`,
		Args: cobra.NoArgs,
		RunE: runE(o, streams),
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
