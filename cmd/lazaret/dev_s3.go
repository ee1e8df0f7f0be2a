package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/lazaret/lazaret/s3api"
)

// devS3Port is the S3 API's port on each dev node's address.
const devS3Port = "9000"

func (n *devNode) s3Addr() string { return net.JoinHostPort(n.addr(), devS3Port) }

// devKeysFile is the key file every dev node's S3 API shares.
func devKeysFile(root string) string { return filepath.Join(root, "s3-keys.json") }

// devEnableS3 adds an [s3] table to n's config unless it has one.
func devEnableS3(n *devNode, root string) error {
	b, err := os.ReadFile(n.config())
	if err != nil {
		return err
	}
	if bytes.Contains(b, []byte("\n[s3]")) {
		return nil
	}
	add := fmt.Sprintf("\n[s3]\nlisten = %q\nkeys_file = %q\n", n.s3Addr(), devKeysFile(root))
	return os.WriteFile(n.config(), append(b, add...), 0o640)
}

// devPrintS3 makes sure the dev cluster has a readwrite key ("dev") and
// prints how to reach the S3 API of node n with it.
func (m *Main) devPrintS3(n *devNode, root string) error {
	kf := s3api.OpenKeyFile(devKeysFile(root))
	keys, err := kf.Load()
	if err != nil {
		return err
	}
	var key s3api.Key
	for _, k := range keys {
		if k.Name == "dev" {
			key = k
		}
	}
	if key.AccessKey == "" {
		if key, err = kf.Create("dev", s3api.RoleReadWrite, time.Now()); err != nil {
			return err
		}
	}
	ep := "http://" + n.s3Addr()
	fmt.Fprintf(m.Stdout, `
S3 API: %s  bucket quarantine  region us-east-1  (keys in %s)
  access key %s  secret %s  (readwrite)
  export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_DEFAULT_REGION=us-east-1
  aws --endpoint-url %s s3 ls s3://quarantine/ --recursive
  export RCLONE_CONFIG_LZ_TYPE=s3 RCLONE_CONFIG_LZ_PROVIDER=Minio RCLONE_CONFIG_LZ_REGION=us-east-1 RCLONE_CONFIG_LZ_ENDPOINT=%s RCLONE_CONFIG_LZ_ACCESS_KEY_ID=%s RCLONE_CONFIG_LZ_SECRET_ACCESS_KEY=%s
  rclone lsf -R lz:quarantine
`, ep, kf.Path(), key.AccessKey, key.Secret, key.AccessKey, key.Secret, ep, ep, key.AccessKey, key.Secret)
	return nil
}
