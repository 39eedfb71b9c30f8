package pgserver

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverUser is the OS account the server runs as when we are root:
// initdb and postgres refuse to run as root. Debian's postgresql package
// creates it.
const serverUser = "postgres"

// owner is the OS identity that runs initdb, pg_ctl and postgres. A nil
// *owner means "the invoking user" (the non-root case).
type owner struct {
	uid, gid uint32
	name     string
}

// serverOwner returns nil when not root, else the postgres OS user.
func serverOwner() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		return nil, fmt.Errorf("pgserver: running as root, so the server must run as OS user %q, "+
			"but looking it up failed (apt-get install -y postgresql creates it): %w", serverUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgserver: OS user %q has non-numeric uid/gid %q/%q", serverUser, u.Uid, u.Gid)
	}
	return &owner{uid: uint32(uid), gid: uint32(gid), name: serverUser}, nil
}

// chown gives paths to the owner (no-op when o is nil).
func (o *owner) chown(paths ...string) error {
	if o == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(o.uid), int(o.gid)); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	return nil
}

// checkTraversable fails early, with a clear message, if the owner cannot
// reach dir (e.g. Options.Dir under a 0700 root-owned directory); otherwise
// initdb would fail with a less obvious permission error.
func (o *owner) checkTraversable(dir string) error {
	if o == nil {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			bit := os.FileMode(0o001)
			switch {
			case st.Uid == o.uid:
				bit = 0o100
			case st.Gid == o.gid:
				bit = 0o010
			}
			if fi.Mode().Perm()&bit == 0 {
				return fmt.Errorf("pgserver: directory %s is not searchable by OS user %q (the server runs as %q because we are root); "+
					"use an Options.Dir it can reach, e.g. under /tmp", p, o.name, o.name)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// waitDelay bounds how long Wait waits for output pipes after the process
// exits, in case a daemonised child kept them open.
const waitDelay = 5 * time.Second

// run executes bin from binDir as o (nil: as ourselves) in dir and returns
// its combined output; a failure's error includes that output.
func (o *owner) run(ctx context.Context, dir, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	// C locale: messages we parse (e.g. "Address already in use") are English.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.WaitDelay = waitDelay
	if o != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: o.uid, Gid: o.gid}}
		cmd.Env = append(cmd.Env, "HOME="+dir, "USER="+o.name, "LOGNAME="+o.name)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("pgserver: %s %s: %w\n%s", filepath.Base(bin),
			strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}
