"""A talking peer in its own process, for tests that kill it mid-stream.

python -m tests.peer_process URL WAV   # prints the session id, then streams forever
"""

import asyncio
import sys

from engine.constants import SAMPLE_RATE
from engine.wav import read_wav
from server.bench.client import Peer, WavMicrophone


async def main(url: str, wav: str) -> None:
    peer = Peer(url, WavMicrophone(read_wav(wav, SAMPLE_RATE), SAMPLE_RATE, loop=True))
    await peer.talk()
    print(peer.session_id, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
