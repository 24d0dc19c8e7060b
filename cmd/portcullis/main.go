// Command portcullis is the Portcullis admission webhook policy server and
// its offline tools (validate, test).
package main

import (
	"os"

	"github.com/portcullis/portcullis/cmd/portcullis/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
