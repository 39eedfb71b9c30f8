//go:build !linux

package main

import "syscall"

// childProcAttr: only Linux has a parent-death signal; elsewhere children
// are stopped by benchrun's own cleanup (proc.stop) and outlive a
// benchrun that is killed.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
