package backend

import (
	"net"
	"time"
)

// Handed is what a server connection is, besides its socket, when one
// sluice process hands it to another (the upgrade hand-off of a
// session-mode client, docs/design/upgrade-handoff.md).
type Handed struct {
	Addr, Network, Address string
	PID                    uint32
	Secret                 []byte
	Params                 map[string]string
	Created                time.Time
	// Opened is the startup set it was opened with (nil: none); Applied
	// the settings set on it since for its session (see Conn.applied).
	Opened  *StartupSet
	Applied map[string]string
}

// HandOff describes c for the process it moves to. Its holder calls it
// while the connection is idle (at a ReadyForQuery 'I', nothing buffered:
// c.br is nil then, see release). The maps are c's own.
func (c *Conn) HandOff() Handed {
	return Handed{Addr: c.Addr, Network: c.Network, Address: c.Address, PID: c.PID, Secret: c.Secret,
		Params: c.Params, Created: c.Created, Opened: c.opened, Applied: c.applied}
}

// Adopt makes a Conn of a server connection another sluice process
// logged in and handed over, on nc (its socket, now this process's).
// The caller holds it as if it had borrowed it (pool.Pool.Adopt counts
// it).
func Adopt(nc net.Conn, h Handed) *Conn {
	if h.Params == nil {
		h.Params = make(map[string]string)
	}
	c := &Conn{Conn: nc, Addr: h.Addr, Network: h.Network, Address: h.Address, PID: h.PID, Secret: h.Secret,
		Params: h.Params, Created: h.Created, opened: h.Opened, applied: h.Applied}
	if v, ok := h.Params["application_name"]; ok {
		c.appName.Store(&v)
	}
	return c
}
