//go:build tools

// Package tools only pins the helm-unittest command so `go mod tidy` keeps its dependencies.
package tools

import _ "github.com/helm-unittest/helm-unittest/cmd/helm-unittest"
