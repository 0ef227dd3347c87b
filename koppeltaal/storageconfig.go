package koppeltaal

import (
	"errors"
	"fmt"
)

// StorageConfig bounds the Storage Service (`koppeltaal.storage`, SPEC.md §9).
type StorageConfig struct {
	// MaxItemBytes is the largest content of one item; larger writes get 413. Default 1 MiB.
	MaxItemBytes int64 `yaml:"max_item_bytes"`
	// MaxPatientBytes is the content one application instance may keep for one patient; a write
	// beyond it gets 403. Default 10 MiB.
	MaxPatientBytes int64 `yaml:"max_patient_bytes"`
	// MaxPatientItems is how many items one application instance may keep for one patient. Default 1000.
	MaxPatientItems int `yaml:"max_patient_items"`
	// MaxIdleDays: an item not written for this many days is removed by the retention job
	// (the Storage Service is not long-term storage, SPEC.md §9). Default 365; 0 keeps the default.
	MaxIdleDays int `yaml:"max_idle_days"`
}

// Defaults of StorageConfig.
const (
	DefaultStorageMaxItemBytes    = 1 << 20
	DefaultStorageMaxPatientBytes = 10 << 20
	DefaultStorageMaxPatientItems = 1000
	DefaultStorageMaxIdleDays     = 365
)

// SetDefaults fills every unset setting with its documented default.
func (c *StorageConfig) SetDefaults() {
	if c.MaxItemBytes <= 0 {
		c.MaxItemBytes = DefaultStorageMaxItemBytes
	}
	if c.MaxPatientBytes <= 0 {
		c.MaxPatientBytes = DefaultStorageMaxPatientBytes
	}
	if c.MaxPatientItems <= 0 {
		c.MaxPatientItems = DefaultStorageMaxPatientItems
	}
	if c.MaxIdleDays <= 0 {
		c.MaxIdleDays = DefaultStorageMaxIdleDays
	}
}

// Validate reports settings that contradict each other.
func (c StorageConfig) Validate() error {
	var errs []error
	if c.MaxItemBytes < 0 || c.MaxPatientBytes < 0 || c.MaxPatientItems < 0 || c.MaxIdleDays < 0 {
		errs = append(errs, errors.New("koppeltaal.storage: max_item_bytes, max_patient_bytes, max_patient_items and max_idle_days must not be negative"))
	}
	if c.MaxItemBytes > 0 && c.MaxPatientBytes > 0 && c.MaxItemBytes > c.MaxPatientBytes {
		errs = append(errs, fmt.Errorf("koppeltaal.storage: max_item_bytes (%d) is larger than max_patient_bytes (%d)", c.MaxItemBytes, c.MaxPatientBytes))
	}
	return errors.Join(errs...)
}

// Fail is a refusal with one error issue, for the packages that extend the API.
func Fail(kind Kind, code, format string, args ...any) *Error {
	return fail(kind, code, format, args...)
}
