package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent asks the kernel to send the server SIGTERM if this process
// dies without stopping it, so a killed benchmark leaves no server behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
