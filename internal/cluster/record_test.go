package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-proxy/sluice/internal/config"
)

func sampleRecord() Record {
	return Record{InstanceID: "proxy-1", PeerID: 3, Address: "10.0.0.21:6432", Version: "1.2.3",
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Databases: []string{"appdb", "reports"},
		Fingerprint: Fingerprint{Databases: "aa", Users: "bb", Auth: "cc"}}
}

func TestRecordRoundTrip(t *testing.T) {
	r := sampleRecord()
	got, err := decodeRecord("proxy-1", []byte(r.encode()))
	require.NoError(t, err)
	require.Equal(t, r, got)
}

func TestDecodeRecordRefusesBadValues(t *testing.T) {
	good := sampleRecord()
	for _, tc := range []struct {
		name, id, value, want string
	}{
		{"not JSON", "proxy-1", "{", "not valid JSON"},
		{"trailing data", "proxy-1", good.encode() + "{}", "data after its JSON object"},
		{"other id", "proxy-2", good.encode(), `names instance "proxy-1" under the key of "proxy-2"`},
		{"peer id 0", "proxy-1", strings.Replace(good.encode(), `"peer_id":3`, `"peer_id":0`, 1), "outside 1..16383"},
		{"peer id too big", "proxy-1", strings.Replace(good.encode(), `"peer_id":3`, `"peer_id":16384`, 1), "outside 1..16383"},
		{"peer id overflow", "proxy-1", strings.Replace(good.encode(), `"peer_id":3`, `"peer_id":70000`, 1), "not valid JSON"},
		{"no port", "proxy-1", strings.Replace(good.encode(), `10.0.0.21:6432`, `10.0.0.21`, 1), "not a host:port"},
		{"too large", "proxy-1", `{"instance_id":"` + strings.Repeat("x", maxRecordSize) + `"}`, "more than 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeRecord(tc.id, []byte(tc.value))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// FuzzDecodeRecord: whatever is stored under a member key, decoding
// returns a valid record or an error, and a valid record survives a
// round trip.
func FuzzDecodeRecord(f *testing.F) {
	f.Add("proxy-1", []byte(sampleRecord().encode()))
	f.Add("proxy-1", []byte(`{"instance_id":"proxy-1","peer_id":1,"address":"[::1]:6432"}`))
	f.Add("x", []byte(`null`))
	f.Add("x", []byte(`{"instance_id":"x","peer_id":1,"address":"h:1","databases":null,"started":"bad"}`))
	f.Add("", []byte(``))
	f.Fuzz(func(t *testing.T, id string, data []byte) {
		r, err := decodeRecord(id, data)
		if err != nil {
			return
		}
		require.Equal(t, id, r.InstanceID)
		require.True(t, r.PeerID >= 1 && r.PeerID <= MaxPeerID)
		again, err := decodeRecord(id, []byte(r.encode()))
		require.NoError(t, err)
		require.Equal(t, r.PeerID, again.PeerID)
		require.Equal(t, r.Address, again.Address)
	})
}

func TestPeerIDCandidates(t *testing.T) {
	taken := map[uint16]string{1: "a", 2: "b", 4: "me", 5: "c", 7: "old me"}
	me := func(h string) bool { return h == "me" }
	require.Equal(t, []uint16{3, 4, 6}, peerIDCandidates(taken, me, 0, 3))
	require.Equal(t, []uint16{4, 3, 6}, peerIDCandidates(taken, me, 4, 3), "the number held before comes first")
	require.Equal(t, []uint16{3, 4, 6}, peerIDCandidates(taken, me, 2, 3), "a number another instance holds is not preferred")
	meAndPredecessor := func(h string) bool { return h == "me" || h == "old me" }
	require.Equal(t, []uint16{7, 3, 4}, peerIDCandidates(taken, meAndPredecessor, 7, 3), "the predecessor's number, after an upgrade")
	full := map[uint16]string{}
	for n := uint16(1); n <= MaxPeerID; n++ {
		full[n] = "other"
	}
	require.Empty(t, peerIDCandidates(full, me, 7, 64))
	delete(full, MaxPeerID)
	require.Equal(t, []uint16{MaxPeerID}, peerIDCandidates(full, me, 0, 64))
}

func TestParsePeerIDKey(t *testing.T) {
	for key, want := range map[string]uint16{"/s/peer_ids/1": 1, "/s/peer_ids/16383": 16383} {
		n, ok := parsePeerIDKey(key, "/s/peer_ids/")
		require.True(t, ok, key)
		require.Equal(t, want, n)
	}
	for _, key := range []string{"/s/peer_ids/", "/s/peer_ids/0", "/s/peer_ids/01", "/s/peer_ids/16384", "/s/peer_ids/-1", "/s/peer_ids/1/x", "/t/peer_ids/1", "/s/peer_ids/99999999999"} {
		_, ok := parsePeerIDKey(key, "/s/peer_ids/")
		require.False(t, ok, key)
	}
}

func TestFingerprintPartsAndOrder(t *testing.T) {
	base := `
users:
  - {name: app, password: secret}
  - {name: ops, password: other}
databases:
  appdb: {hosts: ["127.0.0.1:5432"]}
  reports: {hosts: ["127.0.0.1:5433"]}
`
	parse := func(doc string) *config.Config {
		cfg, err := config.Parse([]byte(doc), nil)
		require.NoError(t, err)
		return cfg
	}
	a := FingerprintOf(parse(base))
	reordered := FingerprintOf(parse(`
users:
  - {name: ops, password: changed}
  - {name: app, password: secret}
databases:
  reports: {hosts: ["127.0.0.1:5433"]}
  appdb: {hosts: ["127.0.0.1:5432"]}
`))
	require.Equal(t, a, reordered, "order and passwords do not count")
	moreDBs := FingerprintOf(parse(base + "  extra: {hosts: [\"127.0.0.1:5434\"]}\n"))
	require.Equal(t, []string{"databases"}, a.Differs(moreDBs))
	md5 := FingerprintOf(parse(base + "auth: {method: md5}\n"))
	require.Equal(t, []string{"users", "auth"}, a.Differs(md5))
	require.Equal(t, []string{"appdb", "reports"}, DatabaseNames(parse(base)))

	peers := []Record{{InstanceID: "me", Fingerprint: a}, {InstanceID: "p2", Fingerprint: moreDBs}, {InstanceID: "p1", Fingerprint: md5}, {InstanceID: "p3", Fingerprint: a}}
	require.Equal(t, "p1 (users, auth), p2 (databases)", mismatchSummary(a, peers, "me"))
	require.Empty(t, mismatchSummary(a, peers[:1], "me"))
}

func TestNextRetry(t *testing.T) {
	ttl := 10 * time.Second
	var got []time.Duration
	for w := time.Duration(0); len(got) < 8; {
		w = nextRetry(w, ttl)
		got = append(got, w)
	}
	require.Equal(t, []time.Duration{minRetry, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
		3200 * time.Millisecond, maxRetry, maxRetry, maxRetry}, got)
	require.Equal(t, time.Second, nextRetry(4*time.Second, 2*time.Second), "half the lease")
}
