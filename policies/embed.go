// Package policies embeds the default Portcullis policy set: every Rego module
// under this directory and the documented defaults in config.yaml.
package policies

import "embed"

// FS holds the default policy set: the Rego modules (tests included; the
// engine skips *_test.rego) and config.yaml.
//
//go:embed config.yaml */*.rego
var FS embed.FS

// ConfigFile is the name, within FS, of the documented default configuration.
const ConfigFile = "config.yaml"
