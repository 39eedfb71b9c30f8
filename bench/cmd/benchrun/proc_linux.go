package main

import "syscall"

// childProcAttr makes the kernel kill a child (PostgreSQL, PgBouncer,
// sluice) when benchrun dies, so an interrupted run leaves nothing behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
