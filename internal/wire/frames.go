package wire

import "github.com/sluice-proxy/sluice/internal/wire/frames"

// The server-side framing names live in package frames, which has no
// I/O (so that txcore can use them); they are re-exported here, where
// the rest of sluice has always found them.

// HeaderLen is the size of a message header: type byte plus int32 length.
const HeaderLen = frames.HeaderLen

type (
	// Scanner tracks message boundaries; see frames.Scanner.
	Scanner = frames.Scanner
	// Visit is Scanner's per-message callback; see frames.Visit.
	Visit = frames.Visit
	// ErrLength is a length field below 4; see frames.ErrLength.
	ErrLength = frames.ErrLength
	// ErrTooLarge is a message over its bound; see frames.ErrTooLarge.
	ErrTooLarge = frames.ErrTooLarge
)

// IsFatal reports whether msg is an ErrorResponse of severity FATAL or
// PANIC; see frames.IsFatal.
func IsFatal(msg []byte) bool { return frames.IsFatal(msg) }
