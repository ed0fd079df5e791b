import Hummingbird
import JWTKit
import AsyncHTTPClient
import Prometheus
import Metrics
import Logging
import Pipeline
