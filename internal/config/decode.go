package config

import (
	"bytes"
	"errors"
	"fmt"

	"go.yaml.in/yaml/v4"
)

// DecodeStrict decodes the YAML file raw (named path in errors) into out the way the configuration file
// is read: ${VAR} substituted from getenv in values, every key checked against out's yaml tags (an unknown
// key is an error with its line, column and the key probably meant), errors on one line prefixed with the
// file name. An empty file leaves out unchanged. Other tools' YAML files (the regression test's) use it,
// so that every file Koppelpoort reads behaves alike.
func DecodeStrict(path string, raw []byte, getenv func(string) string, out any) error {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(raw)).Decode(&doc); err != nil {
		if errors.Is(err, errEOF()) {
			return nil
		}
		return yamlError(path, err)
	}
	if err := substituteEnv(&doc, getenv); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := CheckKnownFields(&doc, out); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := doc.Decode(out); err != nil {
		return yamlError(path, err)
	}
	return nil
}
