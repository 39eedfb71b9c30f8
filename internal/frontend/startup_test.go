package frontend

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/peercancel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func encode(t testing.TB, m pgproto3.FrontendMessage) []byte {
	b, err := m.Encode(nil)
	require.NoError(t, err)
	return b
}

func TestReadStartupKinds(t *testing.T) {
	st, err := ReadStartup(bytes.NewReader(encode(t, &pgproto3.SSLRequest{})), 10000)
	require.NoError(t, err)
	require.Equal(t, KindSSL, st.Kind)

	st, err = ReadStartup(bytes.NewReader(encode(t, &pgproto3.GSSEncRequest{})), 10000)
	require.NoError(t, err)
	require.Equal(t, KindGSSEnc, st.Kind)

	st, err = ReadStartup(bytes.NewReader(encode(t, &pgproto3.CancelRequest{ProcessID: 42, SecretKey: []byte{1, 2, 3, 4}})), 10000)
	require.NoError(t, err)
	require.Equal(t, KindCancel, st.Kind)
	require.Equal(t, uint32(42), st.PID)
	require.Equal(t, []byte{1, 2, 3, 4}, st.Secret)

	// A forwarded cancel is kept whole, from its code on, for the proxy
	// to open with the fleet's secret.
	fwd, err := peercancel.Seal(nil, bytes.Repeat([]byte{1}, 32), peercancel.Forward{Sender: 2, PID: peercancel.PID(1, 5)})
	require.NoError(t, err)
	st, err = ReadStartup(bytes.NewReader(fwd), 10000)
	require.NoError(t, err)
	require.Equal(t, KindPeerCancel, st.Kind)
	require.Equal(t, fwd[4:], st.Peer)

	st, err = ReadStartup(bytes.NewReader(encode(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "app", "database": "appdb"}})), 10000)
	require.NoError(t, err)
	require.Equal(t, KindStartup, st.Kind)
	require.Equal(t, "app", st.Get("user"))
	needed, _ := st.Negotiation()
	require.False(t, needed)
}

func TestProtocol32AndOptionsAreNegotiated(t *testing.T) {
	st, err := ReadStartup(bytes.NewReader(encode(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32,
		Parameters: map[string]string{"user": "app", "_pq_.foo": "1"}})), 10000)
	require.NoError(t, err)
	needed, unrec := st.Negotiation()
	require.True(t, needed)
	require.Equal(t, []string{"_pq_.foo"}, unrec)
}

func TestReadStartupRejectsBadPackets(t *testing.T) {
	cases := map[string][]byte{
		"too long":         lenPrefixed(make([]byte, 40000)),
		"too short":        {0, 0, 0, 4},
		"protocol 2":       lenPrefixed(append(be(2<<16), 0)),
		"no user":          lenPrefixed(append(be(Protocol30), 0)),
		"no terminator":    lenPrefixed(append(be(Protocol30), "user\x00app\x00"...)),
		"missing value":    lenPrefixed(append(be(Protocol30), "user\x00"...)),
		"bytes after term": lenPrefixed(append(be(Protocol30), "user\x00app\x00\x00x"...)),
		"ssl with body":    lenPrefixed(append(be(CodeSSL), 1)),
		"short cancel":     lenPrefixed(append(be(CodeCancel), 1, 2)),
	}
	for name, pkt := range cases {
		_, err := ReadStartup(bytes.NewReader(pkt), 10000)
		var pe *ProtocolError
		require.ErrorAs(t, err, &pe, name)
		require.NotEmpty(t, pe.Code, name)
	}
}

func TestSettingsFromOptionsAndParams(t *testing.T) {
	st := &Startup{Kind: KindStartup, Params: []Param{
		{"user", "app"}, {"database", "db"}, {"application_name", "x"},
		{"options", `-c DateStyle=SQL,DMY --search-path=a\ b -cwork_mem=1MB`},
	}}
	got, err := st.Settings()
	require.NoError(t, err)
	require.Equal(t, []Param{{"DateStyle", "SQL,DMY"}, {"search_path", "a b"}, {"work_mem", "1MB"}, {"application_name", "x"}}, got)

	st.Params = []Param{{"user", "app"}, {"options", "-x"}}
	_, err = st.Settings()
	require.Error(t, err)

	// An explicit parameter comes after options' switches, so it wins
	// where the two name the same setting (as in PostgreSQL).
	st.Params = []Param{{"user", "app"}, {"options", "-c client_encoding=SQL_ASCII"}, {"client_encoding", "UTF8"}}
	got, err = st.Settings()
	require.NoError(t, err)
	require.Equal(t, []Param{{"client_encoding", "SQL_ASCII"}, {"client_encoding", "UTF8"}}, got)

	// The login's own parameters are not settings: "-c user=" must not
	// reach a server connection's startup packet.
	for _, opt := range []string{"-c user=postgres", "--database=other", "-c replication=true", "-c _pq_.x=1", "-c USER=postgres"} {
		st.Params = []Param{{"user", "app"}, {"options", opt}}
		_, err = st.Settings()
		var pe *ProtocolError
		require.ErrorAs(t, err, &pe, opt)
		require.Equal(t, "42704", pe.Code, opt)
	}
	st.Params = []Param{{"user", "app"}, {"USER", "postgres"}}
	_, err = st.Settings()
	require.Error(t, err, "an explicit USER is an unknown setting, not the user")
}

func be(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func lenPrefixed(body []byte) []byte {
	return append(be(uint32(len(body)+4)), body...)
}

func FuzzParseStartup(f *testing.F) {
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.SSLRequest{}, &pgproto3.GSSEncRequest{},
		&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}},
		&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "options": "-c a=b"}},
		&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "options": "-c client_encoding=SQL_ASCII", "client_encoding": "UTF8"}},
		&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "options": `-c user=postgres --database=x -c a=b\ c`}},
	} {
		f.Add(encode(f, m)[4:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := ParseStartup(body)
		if err != nil {
			return
		}
		if st.Kind == KindStartup {
			st.Negotiation()
			settings, err := st.Settings()
			for _, p := range settings {
				// What a server connection's startup packet may carry:
				// never the login's own parameters.
				if err == nil && notSetting(p.Name) {
					t.Fatalf("setting %q from %q", p.Name, st.Params)
				}
			}
		}
	})
}
