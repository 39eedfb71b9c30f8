package frames

import "bytes"

// IsFatal reports whether msg, one whole ErrorResponse as sent (type
// byte, length, fields), has severity FATAL or PANIC: PostgreSQL closes
// the connection right after such an error, so it is the reason the
// connection ended and a proxy must not add a second one. The
// non-localized severity (field V, sent since PostgreSQL 9.6) is
// preferred; the localized one (S) is used when V is absent. Anything
// malformed is not fatal. It does not allocate.
func IsFatal(msg []byte) bool {
	if len(msg) < HeaderLen || msg[0] != 'E' {
		return false
	}
	var sev []byte
	body := msg[HeaderLen:]
	for len(body) > 0 && body[0] != 0 {
		code := body[0]
		i := bytes.IndexByte(body[1:], 0)
		if i < 0 {
			return false
		}
		val := body[1 : 1+i]
		body = body[2+i:]
		switch code {
		case 'V':
			return isFatalWord(val)
		case 'S':
			sev = val
		}
	}
	return isFatalWord(sev)
}

func isFatalWord(s []byte) bool {
	return string(s) == "FATAL" || string(s) == "PANIC"
}
