package auth

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/xdg-go/scram"
)

const (
	scramPrefix = "SCRAM-SHA-256$"
	// defaultSCRAMIterations and saltLen match PostgreSQL's defaults
	// (scram_iterations = 4096, SCRAM_DEFAULT_SALT_LEN = 16).
	defaultSCRAMIterations = 4096
	saltLen                = 16
	md5HashLen             = 3 + 2*md5.Size // "md5" + 32 hex digits
)

// Credentials is what sluice knows of one user's password. It is prepared
// once, at config load or reload, so that a login costs no PBKDF2: a
// plaintext password is turned into SCRAM keys (random salt, 4096
// iterations) and an md5 hash up front. Credentials is immutable after
// NewCredentials returns and therefore safe for concurrent use.
type Credentials struct {
	user string

	plaintext    string
	hasPlaintext bool

	// md5Hash is "md5" + hex(md5(password + user)), as stored by PostgreSQL.
	md5Hash string

	scram    scram.StoredCredentials
	hasSCRAM bool
}

// NewCredentials prepares credentials for user. password is one of
//
//   - a PostgreSQL SCRAM verifier "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"
//     (as in pg_authid.rolpassword); malformed verifiers are an error;
//   - an md5 hash "md5" + 32 hex digits (md5(password + user)); a 35-byte
//     string starting with "md5" that is not such a hash is an error, because
//     it is far more likely to be a damaged hash than a real password;
//   - anything else: a plaintext password. An empty password is an error:
//     PostgreSQL never accepts one either.
//
// Only a plaintext password costs PBKDF2 here (once).
func NewCredentials(user, password string) (*Credentials, error) {
	c := &Credentials{user: user}
	switch {
	case password == "":
		return nil, fmt.Errorf("auth: user %q: empty password (PostgreSQL never accepts an empty password)", user)
	case strings.HasPrefix(password, scramPrefix):
		sc, err := parseSCRAMVerifier(password)
		if err != nil {
			return nil, fmt.Errorf("auth: user %q: %w", user, err)
		}
		c.scram, c.hasSCRAM = sc, true
	case len(password) == md5HashLen && strings.HasPrefix(password, "md5"):
		if _, err := hex.DecodeString(password[3:]); err != nil {
			return nil, fmt.Errorf("auth: user %q: malformed md5 password hash (want \"md5\" followed by 32 hex digits)", user)
		}
		c.md5Hash = strings.ToLower(password)
	default:
		c.plaintext, c.hasPlaintext = password, true
		c.md5Hash = md5Hash(password, user)
		salt := make([]byte, saltLen)
		if _, err := rand.Read(salt); err != nil {
			return nil, fmt.Errorf("auth: generating SCRAM salt: %w", err)
		}
		sc, err := deriveSCRAM(password, scram.KeyFactors{Salt: string(salt), Iters: defaultSCRAMIterations})
		if err != nil {
			return nil, fmt.Errorf("auth: user %q: deriving SCRAM keys: %w", user, err)
		}
		c.scram, c.hasSCRAM = sc, true
	}
	return c, nil
}

// User returns the user name the credentials were prepared for.
func (c *Credentials) User() string { return c.user }

// HasPlaintext reports whether the plaintext password is known (needed to log
// in to a server that asks for a cleartext password with the client's own
// password).
func (c *Credentials) HasPlaintext() bool { return c.hasPlaintext }

// Plaintext returns the plaintext password if it is known.
func (c *Credentials) Plaintext() (string, bool) { return c.plaintext, c.hasPlaintext }

// SCRAMVerifier returns the credentials as a PostgreSQL SCRAM verifier
// (the format NewCredentials accepts), or "" when only an md5 hash is known.
func (c *Credentials) SCRAMVerifier() string {
	if !c.hasSCRAM {
		return ""
	}
	b64 := base64.StdEncoding.EncodeToString
	return scramPrefix + strconv.Itoa(c.scram.Iters) + ":" + b64([]byte(c.scram.Salt)) + "$" +
		b64(c.scram.StoredKey) + ":" + b64(c.scram.ServerKey)
}

// parseSCRAMVerifier parses "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"
// with the same strictness as PostgreSQL's parse_scram_secret.
func parseSCRAMVerifier(v string) (scram.StoredCredentials, error) {
	bad := func(why string) (scram.StoredCredentials, error) {
		return scram.StoredCredentials{}, errors.New("malformed SCRAM-SHA-256 verifier: " + why)
	}
	rest := strings.TrimPrefix(v, scramPrefix)
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return bad(`missing "$" between parameters and keys`)
	}
	iterStr, saltB64, ok := strings.Cut(params, ":")
	if !ok {
		return bad(`want "<iterations>:<salt>"`)
	}
	iters, err := strconv.Atoi(iterStr)
	if err != nil || iters <= 0 {
		return bad("iteration count must be a positive integer")
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	if err != nil || len(salt) == 0 {
		return bad("salt is not valid non-empty base64")
	}
	storedB64, serverB64, ok := strings.Cut(keys, ":")
	if !ok {
		return bad(`want "<StoredKey>:<ServerKey>"`)
	}
	stored, err1 := base64.StdEncoding.DecodeString(storedB64)
	server, err2 := base64.StdEncoding.DecodeString(serverB64)
	if err1 != nil || err2 != nil || len(stored) != sha256.Size || len(server) != sha256.Size {
		return bad("StoredKey and ServerKey must be base64 of 32 bytes")
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(salt), Iters: iters},
		StoredKey:  stored,
		ServerKey:  server,
	}, nil
}

// newSCRAMClient returns an xdg-go/scram client for password. Like
// PostgreSQL (pg_saslprep), it normalises the password with SASLprep and
// falls back to the raw bytes when SASLprep rejects it. The SCRAM user name is
// always empty, as libpq sends it: PostgreSQL ignores it in favour of the
// startup message's user.
func newSCRAMClient(password string) (*scram.Client, error) {
	c, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		return scram.SHA256.NewClientUnprepped("", password, "")
	}
	return c, nil
}

// deriveSCRAM runs PBKDF2 for password with the given salt and iterations.
func deriveSCRAM(password string, kf scram.KeyFactors) (scram.StoredCredentials, error) {
	c, err := newSCRAMClient(password)
	if err != nil {
		return scram.StoredCredentials{}, err
	}
	return c.GetStoredCredentialsWithError(kf)
}

// md5Hash returns PostgreSQL's stored md5 form: "md5" + hex(md5(password+user)).
func md5Hash(password, user string) string {
	sum := md5.Sum([]byte(password + user))
	return "md5" + hex.EncodeToString(sum[:])
}

// md5Response returns what a client sends for an md5 challenge:
// "md5" + hex(md5(hex(md5(password+user)) + salt)), given the stored hash
// ("md5" + hex(md5(password+user))).
func md5Response(storedHash string, salt [4]byte) string {
	h := md5.New()
	h.Write([]byte(storedHash[3:]))
	h.Write(salt[:])
	return "md5" + hex.EncodeToString(h.Sum(nil))
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
