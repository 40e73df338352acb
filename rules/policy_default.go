package rules

import _ "embed"

// DefaultPolicy is the shipped, commented default policy: what `aarm init`
// writes as policy.yaml and what the proxy runs when that file is absent.
//
//go:embed defaultpolicy/policy.yaml
var DefaultPolicy []byte
