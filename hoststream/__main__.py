from hoststream.cli import main

main()
