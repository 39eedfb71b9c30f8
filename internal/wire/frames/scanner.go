package frames

import (
	"encoding/binary"
	"strconv" // not fmt, which imports os: this package must stay pure
)

// HeaderLen is the size of a message header: type byte plus int32 length.
const HeaderLen = 5

// Scanner tracks message boundaries across arbitrary chunks of a byte stream.
// It keeps no reference to the chunks it is fed, so a relay can reuse its
// buffers freely. The zero value expects the start of a message.
//
// Scanner is not safe for concurrent use; each direction of a relay owns one.
type Scanner struct {
	hdr     [HeaderLen]byte
	hdrLen  int    // bytes of the current header seen so far
	remain  uint32 // body bytes of the current message still to come
	typ     byte   // type of the current message
	first   byte   // first body byte of the current message (valid when sawBody)
	sawBody bool
}

// Visit is called by Scan once per message, when its last byte has been
// seen. typ is the message type, bodyLen the body length, first the first
// body byte (0 if the body is empty), and end the offset in the current
// chunk just past the message (end < HeaderLen+bodyLen means the message
// began in an earlier chunk).
type Visit func(typ byte, bodyLen uint32, first byte, end int)

// ErrLength is returned for a length field below 4 (and by ReadMessage
// for one above its limit; Scan returns ErrTooLarge then).
type ErrLength struct {
	Type   byte
	Length uint32
}

func (e ErrLength) Error() string {
	return "invalid message length " + strconv.FormatUint(uint64(e.Length), 10) + " for message type " + strconv.QuoteRune(rune(e.Type))
}

// Scan feeds a chunk to the scanner and calls visit for every message that
// completes inside it. maxBody bounds the body length (0 = no bound).
func (s *Scanner) Scan(chunk []byte, maxBody uint32, visit Visit) error {
	total := len(chunk)
	for len(chunk) > 0 {
		if s.hdrLen < HeaderLen {
			n := copy(s.hdr[s.hdrLen:], chunk)
			s.hdrLen += n
			chunk = chunk[n:]
			if s.hdrLen < HeaderLen {
				return nil
			}
			s.typ = s.hdr[0]
			l := binary.BigEndian.Uint32(s.hdr[1:])
			if l < 4 {
				return ErrLength{Type: s.typ, Length: l}
			}
			if maxBody > 0 && l-4 > maxBody {
				return ErrTooLarge{Type: s.typ, Length: l, Limit: maxBody + 4}
			}
			s.remain = l - 4
			s.sawBody = false
			s.first = 0
			if s.remain == 0 {
				s.hdrLen = 0
				visit(s.typ, 0, 0, total-len(chunk))
				continue
			}
		}
		if !s.sawBody && len(chunk) > 0 {
			s.first = chunk[0]
			s.sawBody = true
		}
		n := uint32(len(chunk))
		if n > s.remain {
			n = s.remain
		}
		s.remain -= n
		chunk = chunk[n:]
		if s.remain == 0 {
			bodyLen := binary.BigEndian.Uint32(s.hdr[1:]) - 4
			s.hdrLen = 0
			visit(s.typ, bodyLen, s.first, total-len(chunk))
		}
	}
	return nil
}

// AtBoundary reports whether the bytes scanned so far end exactly at a
// message boundary, i.e. nothing of a partial message is pending.
func (s *Scanner) AtBoundary() bool { return s.hdrLen == 0 }

// PartialHeader returns how many bytes of a message header the last chunk
// ended with (0 when it ended at a boundary or inside a body).
func (s *Scanner) PartialHeader() int {
	if s.hdrLen < HeaderLen {
		return s.hdrLen
	}
	return 0
}

// AwaitingBody reports the type of the current message when its header
// has been seen and none of its body yet (0 otherwise), so a caller that
// must see a short message whole can hold back the header.
func (s *Scanner) AwaitingBody() byte {
	if s.hdrLen == HeaderLen && !s.sawBody && s.remain > 0 {
		return s.typ
	}
	return 0
}

// InMessage returns the type of the message the bytes scanned so far end
// inside of, past its header, and how many of its bytes (header
// included) were seen; 0, 0 at a boundary or inside a header. A caller
// that must see a short message whole can hold back that many bytes.
func (s *Scanner) InMessage() (typ byte, seen int) {
	if s.hdrLen < HeaderLen || s.remain == 0 {
		return 0, 0
	}
	bodyLen := binary.BigEndian.Uint32(s.hdr[1:]) - 4
	return s.typ, HeaderLen + int(bodyLen-s.remain)
}

// ErrTooLarge is a client message longer than the configured bound.
// Length and Limit count as the length field does (body + 4).
type ErrTooLarge struct {
	Type          byte
	Length, Limit uint32
}

func (e ErrTooLarge) Error() string {
	return "message of type " + strconv.QuoteRune(rune(e.Type)) + " is " + strconv.FormatUint(uint64(e.Length), 10) +
		" bytes, over limits.max_message_size (" + strconv.FormatUint(uint64(e.Limit), 10) + ")"
}
