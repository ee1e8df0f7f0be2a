package lazaret_test

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lazaret/lazaret"
)

func ExampleParseHeader() {
	msg := "From: =?utf-8?Q?Ren=C3=A9?= <rene@example.com>\r\n" +
		"Subject: =?koi8-r?B?88vJxMvJ?=\r\n" +
		" =?iso-8859-1?Q?_f=FCr_Sie?=\r\n" +
		"Date: Tue, 5 Mar 2024 09:08:07 CET\r\n" +
		"Message-ID: <abc.123@example.com>\r\n" +
		"\r\n" +
		"body\r\n"
	h := lazaret.ParseHeader([]byte(msg))
	fmt.Println(h.From)
	fmt.Println(h.Subject)
	fmt.Println(h.Date.Format(time.RFC1123Z))
	fmt.Println(h.MessageID)
	// Output:
	// René <rene@example.com>
	// Скидки für Sie
	// Tue, 05 Mar 2024 09:08:07 +0100
	// <abc.123@example.com>
}

func ExampleHeaderCapture() {
	body := strings.NewReader("Subject: Caf\xe9\n\n" + strings.Repeat("a long body\n", 100000))
	var hc lazaret.HeaderCapture
	// Stand-in for Put writing the body to storage while it is read.
	n, _ := io.Copy(io.Discard, io.TeeReader(body, &hc))
	fmt.Println(n, hc.Header().Subject)
	// Output:
	// 1200015 Café
}
