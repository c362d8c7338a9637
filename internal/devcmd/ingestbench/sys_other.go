//go:build !linux

package main

import "os/exec"

// dieWithParent is Linux only; elsewhere the server is stopped at the end
// of a run that is not killed.
func dieWithParent(cmd *exec.Cmd) {}
