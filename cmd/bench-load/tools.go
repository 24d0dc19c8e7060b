//go:build tools

// This file keeps the stock OPA server's dependencies in go.mod and go.sum,
// so `make bench-load` can build `opa` from the very OPA version Portcullis
// embeds (go build -o bin/opa github.com/open-policy-agent/opa).
package main

import _ "github.com/open-policy-agent/opa"
