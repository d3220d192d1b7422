# legacy-pricing pod: the sidecar's listener and admin serve the cluster; the
# app it fronts stays on 127.0.0.1 in the same pod.
s|127\.0\.0\.1:10004|0.0.0.0:10004|g
s|127\.0\.0\.1:9905|0.0.0.0:9905|g
