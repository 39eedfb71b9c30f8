package handoff

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// ErrIncompatible is returned by Handshake when the peer speaks another
// Protocol: nothing may be handed over.
var ErrIncompatible = errors.New("incompatible hand-off protocol")

// Conn is one end of the hand-off socket. Send may be called from several
// goroutines; Recv from one at a time. Conn owns the socket; Close ends it.
type Conn struct {
	uc     *net.UnixConn
	sendMu sync.Mutex
	oob    []byte // Recv's control buffer, room for MaxFiles descriptors
}

// NewConn wraps a connected Unix stream socket.
func NewConn(uc *net.UnixConn) *Conn {
	return &Conn{uc: uc, oob: make([]byte, syscall.CmsgSpace(MaxFiles*4))}
}

// Pair makes the socket for an upgrade: the caller's end as a Conn and the
// other end as a file to pass to the new process (exec.Cmd.ExtraFiles);
// the caller closes that file once the process has started.
func Pair() (*Conn, *os.File, error) {
	syscall.ForkLock.RLock() // no exec may inherit the pair before close-on-exec is set
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("hand-off socket pair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "handoff")
	theirs := os.NewFile(uintptr(fds[1]), "handoff-peer")
	c, err := FileConn(mine)
	if err != nil {
		theirs.Close()
		return nil, nil, err
	}
	return c, theirs, nil
}

// FileConn makes a Conn of a socket file (the new process's inherited
// end); it closes f (the Conn holds its own descriptor).
func FileConn(f *os.File) (*Conn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("hand-off socket: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("hand-off socket: descriptor is a %T, not a Unix socket", nc)
	}
	return NewConn(uc), nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.uc.Close() }

// SetDeadline bounds the sends and receives after it (zero: none).
func (c *Conn) SetDeadline(t time.Time) error { return c.uc.SetDeadline(t) }

// SetWriteDeadline bounds the sends after it (zero: none), leaving a
// receive running on another goroutine alone.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.uc.SetWriteDeadline(t) }

// SendWithin is Send bounded by d, without bounding other sends (the
// deadline is set and cleared under the send lock). After a timeout a
// frame may be cut: the caller closes the Conn.
func (c *Conn) SendWithin(d time.Duration, kind Kind, payload []byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.uc.SetWriteDeadline(time.Now().Add(d))
	defer c.uc.SetWriteDeadline(time.Time{})
	return c.sendLocked(kind, payload, nil)
}

// Send writes one message. The files stay the caller's: the receiver gets
// duplicates of their descriptors.
func (c *Conn) Send(kind Kind, payload []byte, files ...*os.File) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("hand-off %s: payload of %d bytes (at most %d)", kind, len(payload), MaxPayload)
	}
	if len(files) > MaxFiles {
		return fmt.Errorf("hand-off %s: %d files (at most %d)", kind, len(files), MaxFiles)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			// Control, not Fd: Fd would make the descriptor blocking,
			// and a socket shares that flag with the duplicates in use.
			rc, err := f.SyscallConn()
			if err != nil {
				return fmt.Errorf("hand-off %s: %w", kind, err)
			}
			if err := rc.Control(func(fd uintptr) { fds[i] = int(fd) }); err != nil {
				return fmt.Errorf("hand-off %s: %w", kind, err)
			}
		}
		oob = syscall.UnixRights(fds...)
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.sendLocked(kind, payload, oob, files...)
}

// sendLocked writes one frame; the caller holds sendMu.
func (c *Conn) sendLocked(kind Kind, payload, oob []byte, files ...*os.File) error {
	frame := make([]byte, headerLen+len(payload))
	putHeader(frame, kind, len(files), len(payload))
	copy(frame[headerLen:], payload)
	// The descriptors travel with the first bytes; the rest of a long
	// frame follows with plain writes.
	n, _, err := c.uc.WriteMsgUnix(frame, oob, nil)
	runtime.KeepAlive(files)
	if err == nil && n < len(frame) {
		_, err = c.uc.Write(frame[n:])
	}
	if err != nil {
		return fmt.Errorf("hand-off %s: %w", kind, err)
	}
	return nil
}

// Recv reads one message. The files are the caller's to close or own,
// each exactly once; on an error none are returned (any received are
// closed). io.EOF means the peer closed the socket between messages.
func (c *Conn) Recv() (Kind, []byte, []*os.File, error) {
	var hdr [headerLen]byte
	var files []*os.File
	fail := func(err error) (Kind, []byte, []*os.File, error) {
		closeFiles(files)
		return 0, nil, nil, err
	}
	for got := 0; got < headerLen; {
		// The header is read with a buffer no longer than it, so the
		// descriptors of the next message are never taken with it.
		n, oobn, flags, _, err := c.uc.ReadMsgUnix(hdr[got:], c.oob)
		if oobn > 0 {
			fs, perr := parseRights(c.oob[:oobn])
			files = append(files, fs...)
			if perr != nil {
				return fail(perr)
			}
		}
		if flags&syscall.MSG_CTRUNC != 0 {
			return fail(fmt.Errorf("%w: more than %d files", ErrFrame, MaxFiles))
		}
		got += n
		if err != nil || n == 0 {
			if got == 0 && (err == nil || errors.Is(err, io.EOF)) {
				return fail(io.EOF)
			}
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fail(err)
		}
	}
	h, err := parseHeader(hdr[:])
	if err != nil {
		return fail(err)
	}
	if len(files) != h.files {
		return fail(fmt.Errorf("%w: %s announced %d files, %d came", ErrFrame, h.kind, h.files, len(files)))
	}
	payload, err := readPayload(c.uc, h.length)
	if err != nil {
		return fail(err)
	}
	return h.kind, payload, files, nil
}

// readPayload reads n bytes, growing its buffer as they come rather than
// trusting n up front.
func readPayload(r io.Reader, n int) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(min(n, 64<<10))
	if _, err := io.CopyN(&b, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("hand-off payload: %w", err)
	}
	return b.Bytes(), nil
}

// parseRights turns the received SCM_RIGHTS descriptors into files; it
// returns those it could make even with an error, for the caller to close.
func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", ErrFrame, err)
	}
	var files []*os.File
	for i := range msgs {
		if msgs[i].Header.Level != syscall.SOL_SOCKET || msgs[i].Header.Type != syscall.SCM_RIGHTS {
			continue
		}
		fds, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			return files, fmt.Errorf("%w: rights: %v", ErrFrame, err)
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "handoff-received"))
		}
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// Handshake sends local's hello and reads the peer's. With another
// Protocol it returns the peer's hello and an error wrapping
// ErrIncompatible.
func (c *Conn) Handshake(local Hello) (Hello, error) {
	local.Protocol = Protocol
	if err := c.Send(KindHello, EncodeHello(local)); err != nil {
		return Hello{}, err
	}
	kind, payload, files, err := c.Recv()
	if err != nil {
		return Hello{}, err
	}
	closeFiles(files)
	if kind != KindHello {
		return Hello{}, fmt.Errorf("%w: expected hello, got %s", ErrFrame, kind)
	}
	peer, err := DecodeHello(payload)
	if err != nil {
		return Hello{}, err
	}
	if peer.Protocol != Protocol {
		return peer, fmt.Errorf("%w: peer speaks %d, this binary %d", ErrIncompatible, peer.Protocol, Protocol)
	}
	return peer, nil
}
