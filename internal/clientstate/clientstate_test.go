package clientstate

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func txState() *State {
	return &State{
		Mode: ModeTransaction, User: "app", Database: "appdb",
		Startup:  []Param{{"application_name", "moved"}, {"datestyle", "ISO"}},
		Settings: []Param{{"search_path", "public"}, {"work_mem", "8MB"}},
		Statements: []Statement{
			{Name: "s1", Query: []byte("SELECT $1::int"), ParamOIDs: []uint32{23}, Server: "sluice_abc"},
			{Name: "", Query: []byte("SELECT 1")},
			{Name: "sq", Query: []byte("(int) AS SELECT $1"), Server: "sluice_def", SQL: true},
		},
		CancelPID: 1<<30 | 7, CancelSecret: 0xdeadbeef, AppName: "moved", StartedUnixNano: 1234567890, Load: true,
		Listen: []string{"jobs", "Mixed Case"},
	}
}

func sessionState() *State {
	return &State{
		Mode: ModeSession, User: "app", Database: "appdb", CancelPID: 4242, CancelSecret: 1,
		Server: &Server{Addr: "127.0.0.1:5432", Network: "tcp", Address: "127.0.0.1:5432", PID: 4242,
			Secret: []byte{1, 2, 3, 4}, Params: []Param{{"server_version", "15.4"}, {"TimeZone", "UTC"}},
			CreatedUnixNano: 99, Opened: []Param{{"application_name", "x"}}, Applied: []Param{{"work_mem", "8MB"}}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, st := range []*State{txState(), sessionState(), {Mode: ModeStatement, User: "u", Database: "d"}} {
		b, err := Append([]byte("prefix"), st)
		require.NoError(t, err)
		require.Equal(t, "prefix", string(b[:6]))
		require.Equal(t, byte(Version), b[6])
		got, err := Decode(b[6:])
		require.NoError(t, err)
		require.Equal(t, st, got)
	}
}

// A state of another version is refused as such, so that the caller
// falls back to a drain: never decoded as if it were this one.
func TestOtherVersionRefused(t *testing.T) {
	b, err := Append(nil, txState())
	require.NoError(t, err)
	for _, v := range []byte{0, Version + 1, 0xff} {
		b[0] = v
		_, err = Decode(b)
		require.ErrorIs(t, err, ErrVersion)
	}
}

// Every truncation and a trailing byte are refused as corrupt.
func TestTruncatedAndTrailing(t *testing.T) {
	b, err := Append(nil, sessionState())
	require.NoError(t, err)
	for i := range len(b) {
		_, err := Decode(b[:i])
		require.True(t, errors.Is(err, ErrCorrupt), "cut at %d: %v", i, err)
	}
	_, err = Decode(append(b, 0))
	require.ErrorIs(t, err, ErrCorrupt)
}

// What the decoder would refuse is never written.
func TestAppendRefusesOverLimits(t *testing.T) {
	bad := []*State{
		{Mode: 'x', User: "u", Database: "d"},
		{Mode: ModeTransaction, Database: "d"},
		{Mode: ModeSession, User: "u", Database: "d"},
		{Mode: ModeTransaction, User: "u", Database: "d", Server: &Server{}},
		{Mode: ModeTransaction, User: string(bytes.Repeat([]byte{'u'}, MaxName+1)), Database: "d"},
		{Mode: ModeTransaction, User: "u", Database: "d", Settings: []Param{{"", "x"}}},
		{Mode: ModeTransaction, User: "u", Database: "d", Statements: []Statement{{Name: "s", Query: make([]byte, MaxQuery+1)}}},
		{Mode: ModeSession, User: "u", Database: "d", Server: &Server{Secret: make([]byte, MaxSecret+1)}},
		{Mode: ModeTransaction, User: "u", Database: "d", Listen: []string{""}},
		{Mode: ModeTransaction, User: "u", Database: "d", Statements: []Statement{{Name: "s", SQL: true, ParamOIDs: []uint32{23}}}},
	}
	for i, st := range bad {
		_, err := Append(nil, st)
		require.ErrorIs(t, err, ErrCorrupt, "state %d", i)
	}
}

// A count the input cannot hold is refused before anything is
// allocated for it.
func TestHugeCountRefused(t *testing.T) {
	b := []byte{Version, ModeTransaction, 1, 'u', 1, 'd', 0xff, 0xff, 0xff, 0xff, 0x0f}
	_, err := Decode(b)
	require.ErrorIs(t, err, ErrCorrupt)
}

func FuzzDecode(f *testing.F) {
	for _, st := range []*State{txState(), sessionState()} {
		b, err := Append(nil, st)
		require.NoError(f, err)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{Version + 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Decode(b)
		if err != nil {
			require.Nil(t, st)
			return
		}
		// What decodes encodes back to the same bytes.
		again, err := Append(nil, st)
		require.NoError(t, err)
		require.Equal(t, b, again)
	})
}
