package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
	"unicode/utf8"
)

// MaxPeerID is the largest peer number: 14 bits, PgBouncer's peer_id
// range (1..16383), so that part B's cancel keys can carry it.
const MaxPeerID = 16383

// maxRecordSize bounds a member record read from etcd. Anyone who can
// write under the prefix can put anything there; a record larger than
// this is refused before it is parsed.
const maxRecordSize = 64 << 10

// maxDatabases bounds the database names one record may list.
const maxDatabases = 4096

// Record is what an instance registers under <prefix>members/<id>: who
// it is, how to reach it, and what of its configuration must match the
// rest of the fleet. It is JSON in etcd, and the API's view of a peer.
type Record struct {
	InstanceID  string      `json:"instance_id"`
	PeerID      uint16      `json:"peer_id"`
	Address     string      `json:"address"` // host:port of its PostgreSQL listener, for peers
	Version     string      `json:"version"`
	Started     time.Time   `json:"started"`
	Databases   []string    `json:"databases"`
	Fingerprint Fingerprint `json:"fingerprint"`
	// Incarnation is random per process: two processes that were given
	// the same instance_id by mistake tell each other apart by it.
	Incarnation string `json:"incarnation"`
}

// encode is the record as stored.
func (r Record) encode() string {
	b, _ := json.Marshal(r) // a Record always marshals
	return string(b)
}

// decodeRecord parses a member record stored under the key whose last
// element is id. Whatever is in etcd, it returns a valid record or an
// error, never panics, and allocates in proportion to data (bounded by
// maxRecordSize): a peer with another version, or anyone with write
// access to the prefix, may have put anything there.
func decodeRecord(id string, data []byte) (Record, error) {
	var r Record
	if len(data) > maxRecordSize {
		return r, fmt.Errorf("member record of %d bytes (more than %d)", len(data), maxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("member record is not valid JSON: %w", err)
	}
	if dec.More() {
		return Record{}, errors.New("member record has data after its JSON object")
	}
	switch {
	case r.InstanceID != id:
		return Record{}, fmt.Errorf("member record names instance %q under the key of %q", clip(r.InstanceID), clip(id))
	case r.PeerID < 1 || r.PeerID > MaxPeerID:
		return Record{}, fmt.Errorf("member record of %q has peer_id %d, outside 1..%d", clip(id), r.PeerID, MaxPeerID)
	case !validAddress(r.Address):
		return Record{}, fmt.Errorf("member record of %q has address %q, not a host:port", clip(id), clip(r.Address))
	case len(r.Databases) > maxDatabases:
		return Record{}, fmt.Errorf("member record of %q lists %d databases (more than %d)", clip(id), len(r.Databases), maxDatabases)
	case !utf8.ValidString(r.Version):
		return Record{}, fmt.Errorf("member record of %q has a version that is not UTF-8", clip(id))
	}
	return r, nil
}

func validAddress(a string) bool {
	host, port, err := net.SplitHostPort(a)
	return err == nil && host != "" && port != "" && utf8.ValidString(a)
}

// clip shortens a string from etcd for an error message.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return s
}
