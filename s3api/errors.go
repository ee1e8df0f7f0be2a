package s3api

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"

	"github.com/lazaret/lazaret"
)

// errCode is an S3 error code and its HTTP status.
type errCode struct {
	code   string
	status int
}

// The S3 error codes this API answers with.
var (
	errAccessDenied                      = errCode{"AccessDenied", http.StatusForbidden}
	errInvalidAccessKeyID                = errCode{"InvalidAccessKeyId", http.StatusForbidden}
	errSignatureDoesNotMatch             = errCode{"SignatureDoesNotMatch", http.StatusForbidden}
	errRequestTimeTooSkewed              = errCode{"RequestTimeTooSkewed", http.StatusForbidden}
	errAuthorizationHeaderMalformed      = errCode{"AuthorizationHeaderMalformed", http.StatusBadRequest}
	errAuthorizationQueryParametersError = errCode{"AuthorizationQueryParametersError", http.StatusBadRequest}
	errContentSHA256Mismatch             = errCode{"XAmzContentSHA256Mismatch", http.StatusBadRequest}
	errBadDigest                         = errCode{"BadDigest", http.StatusBadRequest}
	errInvalidDigest                     = errCode{"InvalidDigest", http.StatusBadRequest}
	errIncompleteBody                    = errCode{"IncompleteBody", http.StatusBadRequest}
	errInvalidArgument                   = errCode{"InvalidArgument", http.StatusBadRequest}
	errInvalidRequest                    = errCode{"InvalidRequest", http.StatusBadRequest}
	errMalformedXML                      = errCode{"MalformedXML", http.StatusBadRequest}
	errEntityTooLarge                    = errCode{"EntityTooLarge", http.StatusBadRequest}
	errMissingContentLength              = errCode{"MissingContentLength", http.StatusLengthRequired}
	errNoSuchBucket                      = errCode{"NoSuchBucket", http.StatusNotFound}
	errNoSuchKey                         = errCode{"NoSuchKey", http.StatusNotFound}
	errBucketAlreadyOwnedByYou           = errCode{"BucketAlreadyOwnedByYou", http.StatusConflict}
	errConflict                          = errCode{"OperationAborted", http.StatusConflict}
	errInvalidRange                      = errCode{"InvalidRange", http.StatusRequestedRangeNotSatisfiable}
	errPreconditionFailed                = errCode{"PreconditionFailed", http.StatusPreconditionFailed}
	errMethodNotAllowed                  = errCode{"MethodNotAllowed", http.StatusMethodNotAllowed}
	errNotImplemented                    = errCode{"NotImplemented", http.StatusNotImplemented}
	errInternal                          = errCode{"InternalError", http.StatusInternalServerError}
	errServiceUnavailable                = errCode{"ServiceUnavailable", http.StatusServiceUnavailable}
)

// apiError is an error answered as S3 error XML.
type apiError struct {
	errCode
	msg    string
	region string // for AuthorizationHeaderMalformed: the region to use
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errf(c errCode, format string, args ...any) *apiError {
	return &apiError{errCode: c, msg: fmt.Sprintf(format, args...)}
}

// toAPIError maps an error from lazaret.Quarantine (or this package) to
// what the client is told.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, lazaret.ErrNotFound):
		return errf(errNoSuchKey, "the specified key does not exist")
	case errors.Is(err, lazaret.ErrTooLarge):
		return errf(errEntityTooLarge, "%v", err)
	case errors.Is(err, lazaret.ErrInvalidArgument), errors.Is(err, lazaret.ErrInvalidID):
		return errf(errInvalidArgument, "%v", err)
	case errors.Is(err, lazaret.ErrConflict):
		return errf(errConflict, "%v", err)
	case errors.Is(err, lazaret.ErrUnavailable):
		return errf(errServiceUnavailable, "%v", err)
	}
	return errf(errInternal, "%v", err)
}

type errorXML struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	Region    string   `xml:"Region,omitempty"`
	RequestID string   `xml:"RequestId"`
}

// writeError answers e; HEAD responses carry no body.
func writeError(w http.ResponseWriter, r *http.Request, reqID string, e *apiError) {
	if e.region != "" {
		w.Header().Set("X-Amz-Bucket-Region", e.region)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(e.status)
		return
	}
	writeXML(w, e.status, errorXML{Code: e.code, Message: e.msg, Resource: r.URL.Path, Region: e.region, RequestID: reqID})
}

func writeXML(w http.ResponseWriter, status int, v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", fmt.Sprint(len(xml.Header)+len(out)))
	w.WriteHeader(status)
	w.Write([]byte(xml.Header))
	w.Write(out)
}
