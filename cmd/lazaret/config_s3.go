package main

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/lazaret/lazaret/s3api"
)

// S3Config is the [s3] table: the S3-compatible API (package s3api).
type S3Config struct {
	// Listen is host:port for the API, e.g. "127.0.0.1:9000". Empty (the
	// default) serves none; serve --s3 ADDR sets it.
	Listen string `toml:"listen"`
	// Bucket is the one bucket's name (default "quarantine").
	Bucket string `toml:"bucket"`
	// Region is the region clients sign for (default "us-east-1").
	Region string `toml:"region"`
	// Cert and Key are a PEM certificate and key: HTTPS. Without them the
	// API speaks plain HTTP, allowed only on a loopback address.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// KeysFile holds the keys made with `lazaret s3 key create`, secrets
	// encrypted under KeysFile.master (default: DATA/s3-keys.json).
	KeysFile string `toml:"keys_file"`
	// Keys are further access keys given in this file.
	Keys []S3Key `toml:"keys"`
}

// S3Key is one [[s3.keys]] entry.
type S3Key struct {
	Name      string `toml:"name"`
	AccessKey string `toml:"access_key"`
	Secret    string `toml:"secret"`
	Role      string `toml:"role"` // "read" (default) or "readwrite"
}

func defaultS3Config() S3Config {
	d := s3api.DefaultConfig()
	return S3Config{Bucket: d.Bucket, Region: d.Region}
}

func (c *Config) validateS3() error {
	s := c.S3
	if s.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(s.Listen)
	if err != nil {
		return fmt.Errorf("s3.listen = %q: %v", s.Listen, err)
	}
	if (s.Cert == "") != (s.Key == "") {
		return fmt.Errorf("s3.cert and s3.key: give both or neither")
	}
	if ip := net.ParseIP(host); s.Cert == "" && (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return fmt.Errorf("s3.listen = %q: plain HTTP only on a loopback address; set s3.cert and s3.key for HTTPS", s.Listen)
	}
	if _, err := c.s3Keys(); err != nil {
		return err
	}
	sc := c.s3apiConfig()
	return sc.Validate()
}

func (c *Config) s3apiConfig() s3api.Config {
	sc := s3api.DefaultConfig()
	sc.Bucket, sc.Region, sc.MaxObjectSize = c.S3.Bucket, c.S3.Region, int64(c.Store.MaxMessageSize)
	return sc
}

func (c *Config) s3KeysFile() string {
	if c.S3.KeysFile != "" {
		return c.S3.KeysFile
	}
	return filepath.Join(c.Store.Data, "s3-keys.json")
}

// s3Keys is the keys of the config file, then those of the key file.
func (c *Config) s3Keys() (s3api.Keys, error) {
	var static s3api.StaticKeys
	for i, k := range c.S3.Keys {
		role := k.Role
		if role == "" {
			role = string(s3api.RoleRead)
		}
		r, err := s3api.ParseRole(role)
		if err != nil {
			return nil, fmt.Errorf("s3.keys[%d]: %w", i, err)
		}
		if k.AccessKey == "" || len(k.Secret) < 16 {
			return nil, fmt.Errorf("s3.keys[%d]: access_key and a secret of at least 16 characters are required", i)
		}
		static = append(static, s3api.Key{Name: k.Name, AccessKey: k.AccessKey, Secret: k.Secret, Role: r})
	}
	return s3api.Keys{static, s3api.OpenKeyFile(c.s3KeysFile())}, nil
}
