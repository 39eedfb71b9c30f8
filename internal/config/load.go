package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// Parse decodes a configuration file, applies defaults, expands ${VAR} in
// users[].password and users[].server_password with lookupEnv, and
// validates. On any problem it returns a nil *Config and a Problems error
// listing all of them. A nil lookupEnv means no variable is set. Parse
// reads no files: a users[].password_file or server_password_file is a
// problem here; use ParseWith or Load.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	return ParseWith(data, lookupEnv, nil)
}

// ParseWith is Parse that reads users[].password_file and
// users[].server_password_file with readFile (Load passes ReadSecretFile;
// tests pass a fake). A nil readFile refuses every such file.
func ParseWith(data []byte, lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	if readFile == nil {
		readFile = func(string) ([]byte, error) {
			return nil, errors.New("secret files are not read here (use sluice check-config or run with the file)")
		}
	}
	c := newCollector()
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, Problems{{Message: "invalid YAML: " + trimYAMLPrefix(err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, Problems{{Message: "invalid YAML: " + trimYAMLPrefix(err)}}
		}
		c.add("", extra.Line, "the file must hold a single YAML document (found a second one)")
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	cfg := defaultConfig()
	d := &decoder{c: c, budget: workBudget}
	switch {
	case doc.Kind == 0 || isNull(doc):
		// An empty file: every default, and validation reports what's missing.
	case resolve(doc).Kind != yaml.MappingNode:
		return nil, Problems{{Message: fmt.Sprintf("the file must be a mapping of settings such as \"databases:\", got %s (line %d)", describe(resolve(doc)), doc.Line)}}
	default:
		d.value(doc, "", reflect.ValueOf(cfg).Elem())
	}
	if d.budget <= 0 {
		return nil, c.probs
	}
	validate(cfg, c, sources{env: lookupEnv, readFile: readFile})
	if len(c.probs) > 0 {
		return nil, c.probs
	}
	return cfg, nil
}

func trimYAMLPrefix(err error) string {
	s := err.Error()
	if len(s) > 6 && s[:6] == "yaml: " {
		return s[6:]
	}
	return s
}

// Load reads and parses the file at path, expanding variables from the
// process environment and password files from disk. Errors reading the file are returned as they are;
// problems with its content as Problems.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseWith(data, os.LookupEnv, ReadSecretFile)
}
