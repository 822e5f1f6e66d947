"""Is the rendezvous port free? Run by ``tools/dist_train.sh`` / ``dist_test.sh`` before launching.

    python tools/free_port.py PORT [SCRIPT]

Exits 0 when PORT can be listened on; otherwise prints which ``PORT=...`` to use and exits 1
(torch's launcher would otherwise stop on ``EADDRINUSE`` with no hint). Standard library only,
so it runs in a fraction of a second.
"""
import socket
import sys

SEARCH_RANGE = 200


def port_is_free(port: int) -> bool:
    """Whether a TCP server can listen on ``port`` (as torch's TCPStore does: all interfaces,
    ``SO_REUSEADDR``, so a port in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(('', port))
            sock.listen(1)
        except OSError:
            return False
    return True


def free_port_near(port: int) -> int:
    for candidate in range(port + 1, min(port + SEARCH_RANGE, 65535) + 1):
        if port_is_free(candidate):
            return candidate
    with socket.socket() as sock:
        sock.bind(('', 0))
        return sock.getsockname()[1]


def busy_port_message(port: int, script: str = 'tools/dist_train.sh') -> str:
    return (f'port {port} is already in use (another distributed run, or a run that is still '
            f'shutting down?): torch.distributed would stop with EADDRINUSE. Choose a free '
            f'rendezvous port, e.g. PORT={free_port_near(port)} {script} ...')


def main(argv) -> int:
    if len(argv) < 2 or not argv[1].isdigit():
        print(f'usage: {argv[0]} PORT [SCRIPT]', file=sys.stderr)
        return 2
    port = int(argv[1])
    if port_is_free(port):
        return 0
    print(busy_port_message(port, *argv[2:3]), file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
