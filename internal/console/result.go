package console

import (
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Type OIDs of the console's columns: PgBouncer's, so that drivers parse
// counters as numbers (int4 for counts, int8 for totals, text else).
const (
	TypeText uint32 = 25
	TypeInt4 uint32 = 23
	TypeInt8 uint32 = 20
)

// Column is one column of a result.
type Column struct {
	Name string
	Type uint32
}

// Result is a row set, or with no columns a command's completion (Tag)
// and an optional notice (SHOW HELP, SET of an ignored parameter).
type Result struct {
	Columns []Column
	// Rows hold nil (NULL), string, int, int64, uint64, uint32, bool
	// (shown as 0 or 1, as PgBouncer's flags) or time.Time values.
	Rows   [][]any
	Tag    string // CommandComplete's tag; "SHOW" for views
	Notice string
}

// cols builds a column list from "name:t" pairs (t: s text, i int4, q int8).
func cols(spec ...string) []Column {
	out := make([]Column, len(spec))
	for i, s := range spec {
		t := TypeText
		switch s[len(s)-2:] {
		case ":i":
			t = TypeInt4
		case ":q":
			t = TypeInt8
		}
		out[i] = Column{Name: s[:len(s)-2], Type: t}
	}
	return out
}

// TimeFormat is how timestamps are shown (PgBouncer's, with a zone).
const TimeFormat = "2006-01-02 15:04:05 MST"

// text renders one value as PostgreSQL's text format; ok false is NULL.
func text(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case bool:
		if x {
			return "1", true
		}
		return "0", true
	case time.Time:
		if x.IsZero() {
			return "", false
		}
		return x.UTC().Format(TimeFormat), true
	}
	panic("console: unsupported value type") // programming error
}

// Append encodes the result as the messages a simple Query gets before
// its ReadyForQuery: [NoticeResponse] [RowDescription DataRow...]
// CommandComplete.
func (r *Result) Append(buf []byte) []byte {
	if r.Notice != "" {
		buf, _ = (&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: r.Notice}).Encode(buf)
	}
	if len(r.Columns) > 0 {
		rd := &pgproto3.RowDescription{Fields: make([]pgproto3.FieldDescription, len(r.Columns))}
		for i, c := range r.Columns {
			size := int16(-1)
			switch c.Type {
			case TypeInt4:
				size = 4
			case TypeInt8:
				size = 8
			}
			rd.Fields[i] = pgproto3.FieldDescription{Name: []byte(c.Name), DataTypeOID: c.Type, DataTypeSize: size, TypeModifier: -1}
		}
		buf, _ = rd.Encode(buf)
		vals := make([][]byte, len(r.Columns))
		for _, row := range r.Rows {
			for i := range vals {
				s, ok := text(row[i])
				if ok {
					vals[i] = []byte(s)
				} else {
					vals[i] = nil
				}
			}
			buf, _ = (&pgproto3.DataRow{Values: vals}).Encode(buf)
		}
	}
	tag := r.Tag
	if tag == "" {
		tag = "SHOW"
	}
	buf, _ = (&pgproto3.CommandComplete{CommandTag: []byte(tag)}).Encode(buf)
	return buf
}

// AppendError encodes e as an ErrorResponse (severity ERROR).
func AppendError(buf []byte, e *Error) []byte {
	buf, _ = (&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: e.Code, Message: e.Msg}).Encode(buf)
	return buf
}
