package clientstate

import (
	"encoding/binary"
	"fmt"
)

// The layout, version 2 (docs/design/upgrade-handoff.md): the version
// byte, then the fields of State in order; a string or byte string is
// its length (uvarint) and its bytes, a list its count (uvarint) and its
// elements, a uint32 four bytes big-endian, an int64 eight, a bool one
// byte (0 or 1), and the optional Server a presence byte (0 or 1) before
// its fields, then the channels listened to (a list of strings). Version
// 2 added the channels and, after each statement's server name, its SQL
// flag (a SQL-level PREPARE's).

// Append encodes st after buf. It refuses a state the decoder would
// refuse (a field over its limit), so that what one process writes the
// next can always read.
func Append(buf []byte, st *State) ([]byte, error) {
	if err := st.check(); err != nil {
		return nil, err
	}
	e := encoder{b: append(buf, Version, st.Mode)}
	e.str(st.User)
	e.str(st.Database)
	e.params(st.Startup)
	e.params(st.Settings)
	e.uvarint(uint64(len(st.Statements)))
	for _, s := range st.Statements {
		e.str(s.Name)
		e.bytes(s.Query)
		e.uvarint(uint64(len(s.ParamOIDs)))
		for _, oid := range s.ParamOIDs {
			e.b = binary.BigEndian.AppendUint32(e.b, oid)
		}
		e.str(s.Server)
		e.bool(s.SQL)
	}
	e.b = binary.BigEndian.AppendUint32(e.b, st.CancelPID)
	e.b = binary.BigEndian.AppendUint32(e.b, st.CancelSecret)
	e.str(st.AppName)
	e.b = binary.BigEndian.AppendUint64(e.b, uint64(st.StartedUnixNano))
	e.bool(st.Load)
	e.bool(st.Server != nil)
	if sv := st.Server; sv != nil {
		e.str(sv.Addr)
		e.str(sv.Network)
		e.str(sv.Address)
		e.b = binary.BigEndian.AppendUint32(e.b, sv.PID)
		e.bytes(sv.Secret)
		e.params(sv.Params)
		e.b = binary.BigEndian.AppendUint64(e.b, uint64(sv.CreatedUnixNano))
		e.params(sv.Opened)
		e.params(sv.Applied)
	}
	e.uvarint(uint64(len(st.Listen)))
	for _, ch := range st.Listen {
		e.str(ch)
	}
	return e.b, nil
}

// Decode parses a state Append wrote. ErrVersion: another format; any
// other error wraps ErrCorrupt. The state's strings and byte slices are
// copies: it does not keep b.
func Decode(b []byte) (*State, error) {
	if len(b) == 0 {
		return nil, corrupt("empty")
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w %d (this sluice reads %d)", ErrVersion, b[0], Version)
	}
	d := decoder{b: b[1:]}
	st := &State{Mode: d.byte()}
	st.User = d.str(MaxName)
	st.Database = d.str(MaxName)
	st.Startup = d.params()
	st.Settings = d.params()
	n := d.count(4) // a statement takes at least 4 bytes
	if n > 0 {
		st.Statements = make([]Statement, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		s := Statement{Name: d.str(MaxName), Query: d.bytes(MaxQuery)}
		if k := d.count(4); k > MaxParamOIDs {
			d.fail("%d parameter types", k)
		} else if k > 0 {
			s.ParamOIDs = make([]uint32, k)
			for j := range s.ParamOIDs {
				s.ParamOIDs[j] = d.u32()
			}
		}
		s.Server = d.str(MaxName)
		s.SQL = d.bool()
		st.Statements = append(st.Statements, s)
	}
	st.CancelPID, st.CancelSecret = d.u32(), d.u32()
	st.AppName = d.str(MaxValue)
	st.StartedUnixNano = int64(d.u64())
	st.Load = d.bool()
	if d.bool() {
		sv := &Server{Addr: d.str(MaxValue), Network: d.str(MaxName), Address: d.str(MaxValue), PID: d.u32()}
		sv.Secret = d.bytes(MaxSecret)
		sv.Params = d.params()
		sv.CreatedUnixNano = int64(d.u64())
		sv.Opened = d.params()
		sv.Applied = d.params()
		st.Server = sv
	}
	if n := d.count(1); n > MaxChannels {
		d.fail("%d channels", n)
	} else if n > 0 {
		st.Listen = make([]string, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			st.Listen = append(st.Listen, d.str(MaxName))
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the state", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	return st, nil
}

// check is what both sides require of a state.
func (st *State) check() error {
	switch st.Mode {
	case ModeSession, ModeTransaction, ModeStatement:
	default:
		return corrupt("pool mode %q", st.Mode)
	}
	if st.User == "" || st.Database == "" {
		return corrupt("no user or database")
	}
	if (st.Mode == ModeSession) != (st.Server != nil) {
		return corrupt("a server connection moves with a session-mode client, and only with one")
	}
	for _, l := range [][]Param{st.Startup, st.Settings} {
		if err := checkParams(l); err != nil {
			return err
		}
	}
	if len(st.User) > MaxName || len(st.Database) > MaxName || len(st.AppName) > MaxValue {
		return corrupt("a name over %d bytes", MaxName)
	}
	for _, s := range st.Statements {
		if len(s.Name) > MaxName || len(s.Server) > MaxName || len(s.Query) > MaxQuery || len(s.ParamOIDs) > MaxParamOIDs {
			return corrupt("statement %q over the limits", s.Name)
		}
		if s.SQL && (s.Name == "" || len(s.ParamOIDs) > 0) {
			return corrupt("SQL statement %q with no name or with parameter types", s.Name)
		}
	}
	if len(st.Listen) > MaxChannels {
		return corrupt("%d channels", len(st.Listen))
	}
	for _, ch := range st.Listen {
		if ch == "" || len(ch) > MaxName {
			return corrupt("channel %.40q", ch)
		}
	}
	if sv := st.Server; sv != nil {
		if len(sv.Secret) > MaxSecret || len(sv.Addr) > MaxValue || len(sv.Network) > MaxName || len(sv.Address) > MaxValue {
			return corrupt("server connection over the limits")
		}
		if err := checkParams(sv.Params); err != nil {
			return err
		}
		if err := checkParams(sv.Opened); err != nil {
			return err
		}
		if err := checkParams(sv.Applied); err != nil {
			return err
		}
	}
	return nil
}

func checkParams(l []Param) error {
	for _, p := range l {
		if p.Name == "" || len(p.Name) > MaxName || len(p.Value) > MaxValue {
			return corrupt("parameter %.40q over the limits", p.Name)
		}
	}
	return nil
}

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(s []byte)   { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) params(l []Param) {
	e.uvarint(uint64(len(l)))
	for _, p := range l {
		e.str(p.Name)
		e.str(p.Value)
	}
}

// decoder reads fields in order; the first failure sticks (err) and
// every later read yields zero values, so callers check once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = corrupt(format, args...)
	}
	d.b = nil
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("a boolean other than 0 or 1")
	return false
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// length reads a length of at most max bytes that the input still holds.
func (d *decoder) length(max int) int {
	v := d.uvarint()
	if v > uint64(max) || v > uint64(len(d.b)) {
		d.fail("a length of %d", v)
		return 0
	}
	return int(v)
}

// count reads a list's count; each element takes at least min bytes,
// so a count the input cannot hold is refused before anything is made.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/min) {
		d.fail("a count of %d", v)
		return 0
	}
	return int(v)
}

func (d *decoder) str(max int) string { return string(d.take(d.length(max))) }

func (d *decoder) bytes(max int) []byte {
	v := d.take(d.length(max))
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *decoder) params() []Param {
	n := d.count(2) // two empty lengths at least
	if n == 0 {
		return nil
	}
	l := make([]Param, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		l = append(l, Param{Name: d.str(MaxName), Value: d.str(MaxValue)})
	}
	return l
}
