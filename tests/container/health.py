"""GET /health of a server, for the container scripts (tests/container/run.sh).
Run as a script, prints what it says about the workers and the confinement
layers in force, on one line."""
import json
import sys
import urllib.error
import urllib.request


def get_health(url):
    """The /health document (200 or 503), {} when the server does not answer."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)
    except OSError:
        return {}


if __name__ == "__main__":
    health = get_health(sys.argv[1])
    print(json.dumps({"workers": health["workers"], "sandbox": health["sandbox"]}, separators=(",", ":")))
