from mpp.cli import main

main()
