from r42.entry import main

if __name__ == "__main__":
    main()
